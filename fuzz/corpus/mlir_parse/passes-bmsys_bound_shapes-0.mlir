// DEFAULT: module attributes {bmsys.max_batch = 2 : i64, bmsys.max_positions = 64 : i64, bmsys.max_seq = 64 : i64}
module attributes {bmsys.max_positions = 64 : i64} {
}
