"""The console's HTTP routes, one FastAPI APIRouter per concern; `kiosk.console.server.create_app` includes
every module listed in `ROUTER_MODULES` there.

- `auth`: /login (form, POST), /logout, /api/session
- `stream`: / (the live page) and /api/stream (Server-Sent Events)
- `calls`: /api/command (acknowledge / resolve a kiosk's open call)
- `listening`: /api/listening (a staff page says whether it is visible: who can hear a call)

What routers share (the `Console` context, session/CSRF/role checks as FastAPI dependencies, pages and
refusals in the browser's language) is in `kiosk.console.routes.dependencies`. Recipe for a new router:
docs/design.md, "Add a console page/router".
"""
