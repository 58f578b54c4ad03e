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

/** MP4's `ftyp` brands (ISO base media): QuickTime's `qt  ` and others are not MP4 video. */
const MP4_BRANDS = new Set(
  ["isom", "iso2", "iso4", "iso5", "iso6", "mp41", "mp42", "avc1", "M4V ", "dash", "mmp4"],
);
/** Bytes of a WebM file's EBML header searched for its DocType (`webm`, not `matroska`). */
const EBML_HEADER_BYTES = 64;

/** MP4 by its `ftyp` box and brand, WebM by its EBML header's DocType; null for anything else. */
function sniffVideo(bytes: Uint8Array): MediaType | null {
  if (startsWith(bytes, 4, ascii("ftyp")) && bytes.length >= 12) {
    const brand = String.fromCharCode(...bytes.subarray(8, 12));
    return MP4_BRANDS.has(brand) ? "video/mp4" : null;
  }
  if (startsWith(bytes, 0, [0x1a, 0x45, 0xdf, 0xa3])) {
    const header = String.fromCharCode(...bytes.subarray(0, EBML_HEADER_BYTES));
    // The DocType element (0x4282) holds "webm"; a Matroska file's holds "matroska".
    return header.includes("\x42\x82\x84webm") ? "video/webm" : null;
  }
  return null;
}

export function sniffMediaType(bytes: Uint8Array): Sniffed {
  for (const candidate of ACCEPTED) {
    if (candidate.parts.every((part) => startsWith(bytes, part.at, part.bytes))) {
      return { accepted: true, type: candidate.type };
    }
  }
  const video = sniffVideo(bytes);
  if (video) return { accepted: true, type: video };
  const known = KNOWN_REFUSED.find((kind) => startsWith(bytes, 0, kind.bytes));
  return {
    accepted: false,
    description: known?.description ?? "its contents match none of them",
  };
}
