// Password hashing with bcrypt (asynchronous, so sockets stay responsive while it works).
import bcrypt from "bcryptjs";

export function hashPassword(password: string, cost: number): Promise<string> {
  return bcrypt.hash(password, cost);
}

export function verifyPassword(password: string, hash: string): Promise<boolean> {
  return bcrypt.compare(password, hash);
}

const decoys = new Map<number, Promise<string>>();

/** A hash of a random password: compared against when an email is unknown, so both answers take as long. */
export function decoyHash(cost: number): Promise<string> {
  let decoy = decoys.get(cost);
  if (!decoy) {
    decoy = hashPassword(crypto.randomUUID(), cost);
    decoys.set(cost, decoy);
  }
  return decoy;
}
