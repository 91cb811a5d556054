"""Browser pages served by the serving app on the same origin: Predict, Models, Monitoring, Live.

In: the serving app's state (`app.extensions["mlcycle"]`), the MLflow registry, the reports
folder and the prediction log. Out: the Flask blueprint `blueprint`, which `serving.app`
registers when this package exists. Plain Jinja templates and a little vanilla JavaScript from
`static/`; nothing is fetched from the internet.
"""

from serving.web.views import blueprint

__all__ = ["blueprint"]
