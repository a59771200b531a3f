// expected-error @+1 {{max-seq=0 needs the module attribute bmsys.max_positions}}
module {
}
