// Reading /admin/v1/topics/{name}/tail: fetch() and a stream reader, since an
// EventSource cannot send the Authorization header. Events are parsed as the
// Server-Sent Events format says: "event:" and "data:" lines, a blank line ends one,
// lines starting with ":" are comments (the server's heartbeats).

import { request } from "./api.js";

function parseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") event = value;
    else if (name === "data") data.push(value);
  }
  return data.length ? { event, data: data.join("\n") } : null;
}

// Opens a tail; calls onEvent({event, data}) for each event and onEnd(error|null) once.
// Returns a function that closes it.
export function openTail(topic, { query = {}, onEvent, onEnd }) {
  const controller = new AbortController();
  (async () => {
    let failure = null;
    try {
      const response = await request(`/admin/v1/topics/${encodeURIComponent(topic)}/tail`, {
        query,
        headers: { Accept: "text/event-stream" },
        signal: controller.signal,
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const parsed = parseBlock(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          // Closed by an event before (onEvent may close it): nothing more of it.
          if (parsed && !controller.signal.aborted) onEvent(parsed);
        }
      }
    } catch (error) {
      failure = error;
    }
    if (!controller.signal.aborted) onEnd(failure);
  })();
  return () => controller.abort();
}
