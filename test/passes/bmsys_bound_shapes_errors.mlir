// RUN: bmsys-opt %s --verify-diagnostics --bmsys-bound-shapes="max-batch=2"

// expected-error @+1 {{max-seq=0 needs the module attribute bmsys.max_positions}}
module {
}
