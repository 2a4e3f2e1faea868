"""Timer triggers: a monitored seconds-level schedule, and a yearly one that runs on start-up."""

import json

import azure.functions as func

app = func.FunctionApp()


@app.timer_trigger(arg_name="timer", schedule="%TickSchedule%", use_monitor=True)
@app.queue_output(arg_name="out", queue_name="%OutQueue%", connection="AzureWebJobsStorage")
def tick(timer: func.TimerRequest, out: func.Out[str]) -> None:
    out.set(json.dumps({"fn": "tick", "past_due": timer.past_due, "next": timer.schedule_status.get("Next")}))


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True, use_monitor=False)
@app.queue_output(arg_name="out", queue_name="%OutQueue%", connection="AzureWebJobsStorage")
def on_start(timer: func.TimerRequest, out: func.Out[str]) -> None:
    out.set(json.dumps({"fn": "on_start", "past_due": timer.past_due}))
