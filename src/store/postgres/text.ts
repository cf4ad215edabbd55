/**
 * PostgreSQL text cannot hold the NUL character, which SQLite stores and a sampling policy can
 * generate (a response, a prompt that quotes one, a tool call's arguments). The PostgreSQL store
 * keeps such texts as TEXT with a reversible escape through a private-use character: U+E000
 * stands for itself doubled (U+E000 U+E001) and NUL becomes U+E000 U+E002. Texts with neither
 * character (nearly all) are stored as they are, so the tables stay readable in psql.
 */
const ESC = '\uE000';
const NUL = String.fromCharCode(0);

export function encodeText(text: string): string {
  if (!text.includes(NUL) && !text.includes(ESC)) return text;
  // The escape character first, so the escapes made for NUL are not escaped again.
  return text.replaceAll(ESC, `${ESC}\uE001`).replaceAll(NUL, `${ESC}\uE002`);
}

export function decodeText(text: string): string {
  if (!text.includes(ESC)) return text;
  return text.replace(/\uE000([\uE001\uE002])/g, (_, c: string) => (c === '\uE001' ? ESC : NUL));
}
