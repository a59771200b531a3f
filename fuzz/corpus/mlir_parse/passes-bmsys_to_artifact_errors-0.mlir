// A module that was never lowered.
// expected-error @+1 {{bmsys-to-artifact: expects a lowered and planned bmsys_rt module}}
module {
}
