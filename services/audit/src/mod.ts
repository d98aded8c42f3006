/** @portcullis/audit — decision log and time-travel queries (SPEC §8). */
export {};
