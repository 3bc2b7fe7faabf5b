/**
 * Where a chain's records go on the stream: `<prefix>.<instance tokens>.<process>`, the chain's `/`
 * written as `.` (`gw-1/main` -> `portcullis.audit.gw-1.main`). An instance name keeps its dots
 * (`host.example.com/w1` -> `….host.example.com.w1`): the process is always the last token, so the
 * mapping reverses. Characters a subject token cannot hold (`*`, `>`, whitespace, `%`, and a dot
 * that would leave an empty token) are written as `%XX`.
 */
const TOKEN_SAFE = /[^A-Za-z0-9_\-.]/g;

function encodeToken(text: string): string {
  return text.replace(TOKEN_SAFE, (c) => [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

function encodeInstance(instance: string): string {
  const encoded = encodeToken(instance);
  // Dots stay token separators only when no token would be empty (`a..b`, `.a`, `a.`).
  return encoded.split('.').some((t) => t === '') ? encoded.replaceAll('.', '%2E') : encoded;
}

/** The subject a record of `chain` is published on. */
export function subjectFor(prefix: string, chain: string): string {
  const cut = chain.lastIndexOf('/');
  const instance = cut < 0 ? '' : chain.slice(0, cut);
  const process = cut < 0 ? chain : chain.slice(cut + 1);
  const proc = encodeToken(process).replaceAll('.', '%2E') || '%00';
  return instance === '' ? `${prefix}.${proc}` : `${prefix}.${encodeInstance(instance)}.${proc}`;
}

/** The chain a subject under `prefix` carries, or null when the subject is not under it or does not decode. */
export function chainFromSubject(prefix: string, subject: string): string | null {
  if (!subject.startsWith(`${prefix}.`)) return null;
  const tokens = subject.slice(prefix.length + 1).split('.');
  const process = tokens.pop();
  if (process === undefined || process === '' || tokens.some((t) => t === '')) return null;
  try {
    const proc = decodeURIComponent(process);
    return tokens.length === 0 ? proc : `${decodeURIComponent(tokens.join('.'))}/${proc}`;
  } catch {
    return null;
  }
}
