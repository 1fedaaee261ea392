import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_WAL_SEGMENT_BYTES, walSegmentName, walSegmentOfLsn, walSegmentPosition } from "../../infra/plan/pitr";

// WAL segment arithmetic for every segment size initdb --wal-segsize allows (1 MiB .. 1 GiB):
// the pure TypeScript (infra/plan/pitr.ts, used by the tests' archive checks) and the shell
// (scripts/lib-pitr-restore.sh: restorable_pitr_seq, _seg_name, _lsn_seq with PITR_SEG_BYTES,
// which restore and the drill use for windows, gaps and stop points) must agree with each other
// and with PostgreSQL's naming: segment = LSN / size, name = timeline, LSN / 4 GiB, segment
// within that 4 GiB log. (The integration test pitr-segsize checks the names against a real
// server's pg_walfile_name.)
const LIB = join(__dirname, "../../scripts/lib-pitr-restore.sh");
const MiB = 1024 * 1024;

// [segment bytes, LSN, the segment holding it (timeline 1)]
const CASES: Array<[number, string, string]> = [
  [16 * MiB, "0/5000028", "000000010000000000000005"],
  [16 * MiB, "1/FF000000", "0000000100000001000000FF"],
  [16 * MiB, "0/FFFFFFFF", "0000000100000000000000FF"],
  [MiB, "0/5000028", "000000010000000000000050"],
  [MiB, "0/FFFFFFF", "0000000100000000000000FF"],
  [MiB, "0/FFFFFFFF", "000000010000000000000FFF"],
  [MiB, "1/1", "000000010000000100000000"],
  [2 * MiB, "1/1FFFFF", "000000010000000100000000"],
  [2 * MiB, "1/200000", "000000010000000100000001"],
  [64 * MiB, "A/12345678", "000000010000000A00000004"],
  [1024 * MiB, "0/5000028", "000000010000000000000000"],
  [1024 * MiB, "1/C0000000", "000000010000000100000003"],
  [1024 * MiB, "FFFFFFFF/FFFFFFFF", "00000001FFFFFFFF00000003"],
];

function shell(segBytes: number, script: string, ...args: string[]): string {
  return execFileSync("bash", ["-c", `. ${JSON.stringify(LIB)}; PITR_SEG_BYTES=${segBytes}; ${script}`, "bash", ...args], { encoding: "utf8" }).trim();
}

describe("WAL segment names and positions for each segment size", () => {
  it.each(CASES)("%i-byte segments: LSN %s is in %s (TypeScript)", (bytes, lsn, name) => {
    const pos = walSegmentOfLsn(lsn, bytes);
    expect(walSegmentName(1, pos, bytes)).toBe(name);
    expect(walSegmentPosition(name, bytes)).toBe(pos);
  });

  it.each(CASES)("%i-byte segments: LSN %s is in %s (shell, as TypeScript)", (bytes, lsn, name) => {
    const out = shell(bytes, 's=$(restorable_pitr_lsn_seq "$1"); echo "$s $(restorable_pitr_seg_name 1 "$s") $(restorable_pitr_seq "$2")"', lsn, name).split(" ");
    const pos = String(walSegmentOfLsn(lsn, bytes));
    expect(out).toEqual([pos, name, pos]);
  });

  it("the segment after the last of a log is the first of the next log, one position later", () => {
    for (const mb of [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]) {
      const bytes = mb * MiB;
      const last = `00000001000000000${(2 ** 32 / bytes - 1).toString(16).toUpperCase().padStart(7, "0")}`;
      const next = walSegmentName(1, walSegmentPosition(last, bytes) + 1, bytes);
      expect(next, `${mb} MB`).toBe("000000010000000100000000");
      expect(shell(bytes, 'restorable_pitr_seg_name 1 "$(($(restorable_pitr_seq "$1") + 1))"', last), `${mb} MB`).toBe(next);
    }
  });

  it("16 MiB is the default; a name or size another segment size cannot have is refused", () => {
    expect(DEFAULT_WAL_SEGMENT_BYTES).toBe(16 * MiB);
    expect(walSegmentPosition("000000010000000100000002")).toBe(258);
    expect(() => walSegmentPosition("000000010000000000000FFF", 16 * MiB)).toThrow(/not a WAL segment name with 16777216-byte segments/);
    expect(() => walSegmentOfLsn("0/0", 3 * MiB)).toThrow(/3145728 is not a WAL segment size/);
    expect(() => walSegmentName(1, 0, 512 * 1024)).toThrow(/524288 is not a WAL segment size/);
    expect(() => walSegmentOfLsn("0-1", MiB)).toThrow(/not an LSN/);
  });

  it("restorable_pitr_segsize_ok takes exactly the sizes initdb --wal-segsize can make", () => {
    const ok = (v: string) => shell(0, 'if restorable_pitr_segsize_ok "$1"; then echo yes; else echo no; fi', v);
    for (const mb of [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]) expect(ok(String(mb * MiB)), `${mb} MB`).toBe("yes");
    for (const v of ["0", "524288", "3145728", "16777215", "2147483648", "99999999999", "16MB", "", "-16777216", "016777216"]) expect(ok(v), v).toBe("no");
  });
});
