// A hash router: "#/topics/orders" runs the view registered for "/topics/:name".
// A view is async (main, params, context) => optional cleanup function, run when the
// user leaves it (to end a live tail's stream, say).

export class Router {
  constructor(render) {
    this.routes = [];
    this.render = render;
    this.cleanup = null;
    this.generation = 0;
  }

  add(pattern, view, options = {}) {
    const names = [];
    const source = pattern.replace(/:([a-z]+)/g, (_, name) => {
      names.push(name);
      return "([^/]+)";
    });
    this.routes.push({ regex: new RegExp(`^${source}$`), names, view, ...options });
    return this;
  }

  // The route and its parameters, or null: a parameter that is no valid percent-encoding
  // ("%ZZ") matches nothing, and the shell says "Not found".
  match(path) {
    for (const route of this.routes) {
      const found = route.regex.exec(path);
      if (!found) continue;
      const params = {};
      try {
        route.names.forEach((name, index) => {
          params[name] = decodeURIComponent(found[index + 1]);
        });
      } catch (error) {
        if (error instanceof URIError) return null;
        throw error;
      }
      return { route, params };
    }
    return null;
  }

  current() {
    const path = location.hash.replace(/^#/, "").split("?")[0];
    return path || "/";
  }

  query() {
    const hash = location.hash;
    const at = hash.indexOf("?");
    return new URLSearchParams(at < 0 ? "" : hash.slice(at + 1));
  }

  async run() {
    this.generation += 1;
    const generation = this.generation;
    if (this.cleanup) {
      try {
        this.cleanup();
      } catch (error) {
        console.error(error);
      }
      this.cleanup = null;
    }
    const cleanup = await this.render(this.current(), this.match(this.current()), generation);
    if (generation === this.generation) this.cleanup = cleanup ?? null;
    else if (cleanup) cleanup();
  }

  start() {
    window.addEventListener("hashchange", () => this.run());
    return this.run();
  }
}

export function go(path) {
  if (location.hash === `#${path}`) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = path;
}
