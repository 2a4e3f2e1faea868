import azure.functions as func

app = func.FunctionApp()

import not_installed_package_for_funcpy_tests  # noqa: E402,F401
