# The GoogleTest binaries (bin/*-tests) as a lit suite, so one lit run reports
# every test of the project, each gtest case counted once.
import lit.formats

config.name = "bmsys-unit"
config.test_format = lit.formats.GoogleTest(".", "-tests")
config.test_source_root = config.bmsys_tools_dir
config.test_exec_root = config.bmsys_tools_dir
