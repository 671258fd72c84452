/** Where a sender's authenticated messages stood last: its boot, its sequence, when (monotonic ms). */
export interface SequenceMark {
  boot: number;
  seq: number;
  at: number;
}

/**
 * Whether a message (boot, seq) comes after the sender's last one: a later sequence in the same
 * boot, or a later boot (a restart). A boot is the sender's wall clock at its start, so a sender
 * restarted after its clock was set back has an EARLIER boot; that boot is accepted once the
 * previous boot has been silent for `silenceMs` (twice the allowed clock skew: any replayed
 * message of an older boot was sent before that silence began and so fails the skew check).
 * Without this the sender stayed refused as a replay until the receiver restarted.
 */
export function followsSequence(
  prev: SequenceMark | undefined,
  boot: number,
  seq: number,
  monoMs: number,
  silenceMs: number,
): boolean {
  if (!prev) return true;
  if (boot > prev.boot || (boot === prev.boot && seq > prev.seq)) return true;
  return boot < prev.boot && monoMs - prev.at > silenceMs;
}
