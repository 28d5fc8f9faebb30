// The operations pages' stylesheet, added to the document once by the first of them
// shown: the shell's page stays as it is, and 'self' is all the policy allows anyway.

const HREF = "/console/ops.css";

export function useOpsStyle() {
  if (document.querySelector(`link[href="${HREF}"]`)) return;
  document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: HREF }));
}
