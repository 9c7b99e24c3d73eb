import sys

# Bytecode for the project's own modules and the rewritten test modules (in git-ignored
# __pycache__ folders), even where PYTHONDONTWRITEBYTECODE is set: this package is imported
# before the test processes import the project, and the suite starts some forty Python
# processes (test workers, servers, commands) that would each compile them all again.
sys.dont_write_bytecode = False
