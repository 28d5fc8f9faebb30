// The shell: sign-in state, navigation, and the router that puts a view in <main>.

import { api, ApiError, session } from "./api.js";
import { h, replace, status } from "./dom.js";
import { go, Router } from "./router.js";
import { SECTIONS } from "./sections.js";
import { signIn } from "./views/signin.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");

// What the signed-in client may do, learnt once per sign-in: it hides what the API
// would refuse anyway (the API, not the page, is what enforces it).
const context = { admin: false, signInMessage: "" };

async function learnAbilities() {
  try {
    await api("/admin/v1/nodes");
    context.admin = true;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403) throw error;
    context.admin = false;
  }
}

function showChrome(signedIn) {
  nav.hidden = !signedIn;
  who.hidden = !signedIn;
  for (const link of nav.querySelectorAll("a[data-needs=admin]")) {
    link.parentElement.hidden = !context.admin;
  }
}

function markCurrent(section) {
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function notFound(path) {
  return h(
    "section",
    {},
    h("h1", {}, "Not found"),
    h("p", {}, `Nothing in the console at ${path}. `, h("a", { href: "#/topics" }, "Topics")),
  );
}

async function render(path, found, generation) {
  if (!session.key) {
    showChrome(false);
    if (path !== "/signin") {
      go("/signin");
      return null;
    }
    replace(main, signIn(context, onSignedIn));
    main.querySelector("input")?.focus();
    return null;
  }
  showChrome(true);
  if (path === "/" || path === "/signin") {
    go("/topics");
    return null;
  }
  if (!found) {
    markCurrent(null);
    replace(main, notFound(path));
    return null;
  }
  const { route, params } = found;
  markCurrent(route.section);
  if (route.needs === "admin" && !context.admin) {
    replace(
      main,
      h("section", {}, h("h1", {}, "Not allowed"), h("p", {}, "This page needs the admin permission on every topic.")),
    );
    return null;
  }
  const module = await route.load();
  if (generation !== router.generation) return null;
  replace(main);
  main.focus({ preventScroll: true });
  return module.default(main, params, { ...context, section: route.section, query: router.query() });
}

async function onSignedIn(key) {
  session.signIn(key);
  await learnAbilities();
  document.getElementById("who-name").textContent = "Signed in";
  go("/topics");
}

function signOut(message) {
  session.signOut();
  context.admin = false;
  context.signInMessage = message ?? "";
  go("/signin");
}

const router = new Router(render);
for (const section of SECTIONS) router.add(section.path, section.load, section);
// The router stores the loader as the view; render() imports it.
for (const route of router.routes) route.load = route.view;

// The skip link moves focus without touching the hash, which is the router's.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  status("Signed out");
});
window.addEventListener("sluicegate:unauthenticated", (event) => {
  signOut(`Signed out: ${event.detail}`);
});

async function boot() {
  if (session.key) {
    try {
      await learnAbilities();
      document.getElementById("who-name").textContent = "Signed in";
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      signOut(`Signed out: ${error}`);
    }
  }
  await router.start();
}

boot();
