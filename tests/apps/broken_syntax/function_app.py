import azure.functions as func

app = func.FunctionApp()


@app.route(route="ok")
def ok(req: func.HttpRequest) -> str:
    return "ok" +


