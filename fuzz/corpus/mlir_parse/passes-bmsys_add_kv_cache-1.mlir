// expected-error @+1 {{bmsys-add-kv-cache: the module has no shape bounds; run bmsys-bound-shapes first}}
module {
}
