import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="a")
def Same(req: func.HttpRequest) -> str:
    return "a"


@app.route(route="b")
def same(req: func.HttpRequest) -> str:
    return "b"


@app.route(route="c")
@app.blob_input(arg_name="doc", path="docs/{name}", connection="AzureWebJobsStorage")
def reads_blob(req: func.HttpRequest, doc: str) -> str:
    return doc


@app.route(route="d")
def extra_param(req: func.HttpRequest, unbound: str) -> str:
    return unbound


@app.route(route="e/{id:nosuch}")
def bad_route(req: func.HttpRequest) -> str:
    return "e"


@app.timer_trigger(arg_name="t", schedule="every day at noon")
def bad_schedule(t: func.TimerRequest) -> None:
    pass
