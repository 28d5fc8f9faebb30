// The page of a section that is not in this version of the console yet.

import { h } from "../dom.js";

const TITLES = { consumers: "Consumers", schemas: "Schemas", clients: "Clients", nodes: "Nodes" };

export default function notYet(main, params, context) {
  const title = TITLES[context.section] ?? "This page";
  main.append(
    h(
      "section",
      {},
      h("h1", {}, title),
      h("p", {}, `${title} are not here yet. The admin API has them: see `, h("a", { href: "/docs" }, "/docs"), "."),
    ),
  );
}
