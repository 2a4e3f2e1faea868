"""Queue triggers: a function that fails on purpose, and one that writes table and blob outputs."""

import json

import azure.functions as func

app = func.FunctionApp()


@app.queue_trigger(arg_name="msg", queue_name="%InQueue%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="done", queue_name="%OutQueue%", connection="AzureWebJobsStorage")
def process(msg: func.QueueMessage, done: func.Out[str]) -> None:
    body = msg.get_body().decode()
    if body == "bad":
        raise ValueError(f"cannot process {body!r} (attempt {msg.dequeue_count})")
    done.set(json.dumps({"body": body, "id": bool(msg.id), "dequeue_count": msg.dequeue_count,
                         "inserted": msg.insertion_time is not None, "pop_receipt": bool(msg.pop_receipt)}))


@app.queue_trigger(arg_name="text", queue_name="%StoreQueue%", connection="AzureWebJobsStorage")
@app.table_output(arg_name="row", table_name="%StoreTable%", connection="AzureWebJobsStorage",
                  partition_key="orders")
@app.blob_output(arg_name="doc", path="%StoreContainer%/{name}.json", connection="AzureWebJobsStorage")
async def store(text: str, row: func.Out[str], doc: func.Out[str]) -> None:
    order = json.loads(text)
    row.set(json.dumps({"RowKey": order["name"], "Quantity": order["quantity"]}))
    doc.set(text)
