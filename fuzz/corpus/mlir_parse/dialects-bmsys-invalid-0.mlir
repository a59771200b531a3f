// Verifier messages of the bmsys dialect.

// expected-error @+1 {{parameter 'p' must have a static shape}}
bmsys.param @p : tensor<?x8xf32> from "m.safetensors"["p"]
