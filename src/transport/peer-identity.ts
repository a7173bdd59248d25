/**
 * Which node URLs a peer's certificate names. A certificate names the node URL `https://host:port`
 * when one of its subject alternative names is the URI equal to that URL, or the URL's host (a
 * DNS name, wildcards as in TLS, or an IP address). The subject's common name never counts.
 *
 * A host name or address names every node on that host; a URI names exactly one node. So on a
 * host running several nodes (loopback test clusters), only URI names tell them apart
 * (scripts/make-certs.sh makes URI-only certificates unless asked for the host too).
 */
import type { X509Certificate } from "node:crypto";
import { isIP } from "node:net";

/** A URL reduced to what identifies a node: scheme, host and port. */
function nodeUrlKey(raw: string): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return undefined;
  }
  if ((u.pathname !== "/" && u.pathname !== "") || u.search !== "" || u.hash !== "") {
    return undefined;
  }
  if (u.username !== "" || u.password !== "") return undefined;
  return `${u.protocol}//${u.hostname.toLowerCase()}:${u.port}`;
}

/** The host of a URL without IPv6 brackets, or undefined if it does not parse. */
function hostOf(raw: string): string | undefined {
  try {
    const h = new URL(raw).hostname;
    return h.startsWith("[") ? h.slice(1, -1) : h;
  } catch {
    return undefined;
  }
}

/**
 * The subject alternative names of a certificate as `[kind, value]` pairs (`DNS`, `IP Address`,
 * `URI`, ...), from Node's textual form, where a name holding a comma or a quote is quoted as JSON.
 */
export function subjectAltNames(x: X509Certificate): [string, string][] {
  const text = x.subjectAltName ?? "";
  const out: [string, string][] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon < 0) break;
    const kind = text.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (text[j] === '"') {
      // A JSON string: find its closing quote, skipping escaped characters.
      let k = j + 1;
      while (k < text.length && text[k] !== '"') k += text[k] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(text.slice(j, k + 1)) as string;
      } catch {
        value = text.slice(j + 1, k);
      }
      j = k + 1;
    } else {
      const comma = text.indexOf(", ", j);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(j, end);
      j = end;
    }
    out.push([kind, value]);
    i = text.startsWith(", ", j) ? j + 2 : j;
  }
  return out;
}

/** Whether the certificate names the node URL (a SAN URI equal to it, or its host). */
export function certificateNamesUrl(x: X509Certificate, url: string): boolean {
  const key = nodeUrlKey(url);
  const host = hostOf(url);
  if (key === undefined || host === undefined) return false;
  for (const [kind, value] of subjectAltNames(x)) {
    if (kind === "URI" && nodeUrlKey(value) === key) return true;
  }
  if (isIP(host) !== 0) return x.checkIP(host) !== undefined;
  return (
    x.checkHost(host, { subject: "never", wildcards: true, partialWildcards: false }) !== undefined
  );
}

/** The certificate's names for messages: `URI:https://..., DNS:...` or "no subject alternative names". */
export function describeCertificateNames(x: X509Certificate): string {
  const names = subjectAltNames(x).map(([k, v]) => `${k}:${v}`);
  return names.length === 0 ? "no subject alternative names" : names.join(", ");
}
