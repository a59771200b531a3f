// Optimizer state sits next to its parameter, under PyTorch's names.

// SGD: bmsys.sgd @w, %{{.*}}, %{{.*}} state [@w.momentum_buffer] {lr = 1.000000e-01 : f64, max_norm = 0.000000e+00 : f64, min_lr = 0.000000e+00 : f64, momentum = 9.000000e-01 : f64, schedule = "cosine", total_steps = 100 : i64, warmup_steps = 10 : i64, weight_decay = 0.000000e+00 : f64}
// BAD: optimizer must be adamw or sgd, got 'lamb'
// BADSCHED: a cosine schedule needs total_steps (0) > warmup_steps (0)
// NOOPT: error: 'bmsys.grad' op the gradient of 'emb' is never used: add bmsys-optimizer
