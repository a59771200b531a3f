// expected-error @+1 {{bmsys-autodiff: no function 'forward' to differentiate}}
module {
}
