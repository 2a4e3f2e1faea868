import azure.functions as func

import helpers  # noqa: F401

app = func.FunctionApp()
