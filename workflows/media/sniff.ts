// What a file is, judged by its first bytes (its signature), never by its name or declared type.
import type { MediaType } from "../../db/schema.ts";

type Sniffed = { accepted: true; type: MediaType } | { accepted: false; description: string };

const ascii = (text: string) => Array.from(text, (char) => char.charCodeAt(0));

/** Signatures of the accepted types; `at` is the offset of `bytes`. */
const ACCEPTED: { type: MediaType; parts: { at: number; bytes: number[] }[] }[] = [
  { type: "image/png", parts: [{ at: 0, bytes: [0x89, ...ascii("PNG\r\n\x1a\n")] }] },
  { type: "image/jpeg", parts: [{ at: 0, bytes: [0xff, 0xd8, 0xff] }] },
  { type: "image/gif", parts: [{ at: 0, bytes: ascii("GIF87a") }] },
  { type: "image/gif", parts: [{ at: 0, bytes: ascii("GIF89a") }] },
  { type: "image/webp", parts: [{ at: 0, bytes: ascii("RIFF") }, { at: 8, bytes: ascii("WEBP") }] },
  { type: "application/pdf", parts: [{ at: 0, bytes: ascii("%PDF-") }] },
];

/** Refused kinds worth naming in the answer, so the uploader knows what we saw. */
const KNOWN_REFUSED: { description: string; bytes: number[] }[] = [
  { description: "it is a Linux executable (ELF)", bytes: [0x7f, ...ascii("ELF")] },
  { description: "it is a Windows executable", bytes: ascii("MZ") },
  { description: "it is a Mach-O executable", bytes: [0xcf, 0xfa, 0xed, 0xfe] },
  { description: "it is a script", bytes: ascii("#!") },
  { description: "it is a ZIP archive", bytes: ascii("PK\x03\x04") },
];

function startsWith(bytes: Uint8Array, at: number, signature: number[]) {
  return bytes.length >= at + signature.length &&
    signature.every((byte, index) => bytes[at + index] === byte);
}

export function sniffMediaType(bytes: Uint8Array): Sniffed {
  for (const candidate of ACCEPTED) {
    if (candidate.parts.every((part) => startsWith(bytes, part.at, part.bytes))) {
      return { accepted: true, type: candidate.type };
    }
  }
  const known = KNOWN_REFUSED.find((kind) => startsWith(bytes, 0, kind.bytes));
  return {
    accepted: false,
    description: known?.description ?? "its contents match none of them",
  };
}
