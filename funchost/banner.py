"""The start-up summary ``funcpy start`` prints, in the manner of ``func start``.

Keys are never part of it unless the caller asks (an interactive terminal):
logs and redirected output only say where the keys are stored.
"""

from __future__ import annotations

from .dashboard import dashboard_url
from .host import LocalHost
from .keys import DURABLE_SYSTEM_KEY, SECRETS_CONTAINER
from .loader import HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER


def render(host: LocalHost, *, show_keys: bool = False) -> str:
    lines = ["", "Functions:", ""]
    routes = {r.function.name: r for r in host.routes}
    queues = {b.function.name: b for b in host.queue_bindings}
    timers = {b.function.name: b for b in host.timer_bindings}
    for info in host.index:
        if info.trigger_type == HTTP_TRIGGER:
            r = routes[info.name]
            methods = ",".join(sorted(r.methods)) if len(r.methods) < 8 else "ALL"
            auth = f"  (auth: {r.auth_level})" if host.enable_auth and r.auth_level != "anonymous" else ""
            lines.append(f"        {info.name}: [{methods}] {r.url(host.base_url, host.config.route_prefix)}{auth}")
        elif info.trigger_type == QUEUE_TRIGGER:
            lines.append(f"        {info.name}: queueTrigger (queue '{queues[info.name].queue_name}')")
        elif info.trigger_type == TIMER_TRIGGER:
            t = timers[info.name]
            extra = ", runOnStartup" if t.run_on_startup else ""
            lines.append(f"        {info.name}: timerTrigger (schedule '{t.schedule.describe()}'{extra})")
        else:
            lines.append(f"        {info.name}: {info.trigger_type}")
        lines.append("")
    lines.append(f"Durable management API: {host.webhook_base_url}/")
    lines.append(f"Dashboard:              {dashboard_url(host)}")
    lines.append(f"Storage account:        {host.hub.account.describe()}")
    lines.append(f"Task hub:               {host.hub.name} ({host.hub_choice.source})")
    if host.enable_auth:
        lines.append(f"Auth:                   on; keys are kept in container '{SECRETS_CONTAINER}', "
                     f"folder '{host.config.host_id}/'")
        if show_keys:
            lines.append(f"  master key:                 {host.keys.master}")
            lines.append(f"  {DURABLE_SYSTEM_KEY} key:   {host.keys.durable_system_key}")
            for name, keys in sorted(host.keys.per_function.items()):
                lines.append(f"  {name} (function key):  {keys.get('default', '')}")
    else:
        lines.append("Auth:                   off (anonymous, like func start); use --enable-auth to require keys")
    lines.append("")
    lines.append("Press Ctrl+C to stop.")
    return "\n".join(lines)
