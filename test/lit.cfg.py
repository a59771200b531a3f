# lit configuration for the bmsys test suite.
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "bmsys"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["data", "unit", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Inputs", "tools"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.bmsys_obj_root, "test")

config.substitutions.append(("%data", os.path.join(config.bmsys_src_root, "test", "data")))
config.substitutions.append(("%pytools", os.path.join(config.bmsys_src_root, "test", "tools")))
config.substitutions.append(("%fuzz", os.path.join(config.bmsys_src_root, "fuzz")))

llvm_config.with_environment("PATH", config.bmsys_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.use_default_substitutions()
llvm_config.add_tool_substitutions(
    ["bmsys-opt", "bmsys-translate", "bmsys-import-hf", "bmsys-run"], [config.bmsys_tools_dir])

if config.bmsys_have_cuda:
    config.available_features.add("cuda")
