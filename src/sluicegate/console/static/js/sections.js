// The console's pages: hash path → view module. One line per page, so a page is added
// (or a "not here yet" one replaced) without touching the shell.
//   needs: "admin" — shown only to a client with the admin permission on "*".

export const SECTIONS = [
  { path: "/topics", section: "topics", load: () => import("./views/topics.js") },
  { path: "/topics/:name", section: "topics", load: () => import("./views/topic.js") },
  { path: "/consumers", section: "consumers", needs: "admin", load: () => import("./views/consumers.js") },
  { path: "/schemas", section: "schemas", load: () => import("./views/schemas.js") },
  { path: "/clients", section: "clients", needs: "admin", load: () => import("./views/clients.js") },
  { path: "/nodes", section: "nodes", needs: "admin", load: () => import("./views/nodes.js") },
];
