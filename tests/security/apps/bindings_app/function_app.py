"""Outputs named from request data: a blob path, a queue name and a table name built from route and query values.

Each function counts its runs in RUNS, so a test can tell that a refused request never ran it.
"""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
RUNS: list[str] = []


@app.route(route="notes/{name}", methods=["POST"])
@app.blob_output(arg_name="note", path="%NotesContainer%/notes/{name}.txt", connection="AzureWebJobsStorage")
def save_note(req: func.HttpRequest, note: func.Out[str]) -> str:
    RUNS.append(req.route_params["name"])
    note.set(req.get_body().decode("utf-8", "replace"))
    return "saved"


@app.route(route="files", methods=["POST"])
@app.blob_output(arg_name="file", path="%NotesContainer%/{folder}/{file}", connection="AzureWebJobsStorage")
def save_file(req: func.HttpRequest, file: func.Out[str]) -> str:
    RUNS.append(req.params.get("file", ""))
    file.set("content")
    return "saved"


@app.route(route="queue/{tenant}", methods=["POST"])
@app.queue_output(arg_name="msg", queue_name="jobs-{tenant}", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, msg: func.Out[str]) -> str:
    RUNS.append(req.route_params["tenant"])
    msg.set("job")
    return "queued"
