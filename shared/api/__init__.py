"""exomi's HTTP API (docs/API.md), independent of the web framework.

``http`` has the request/response values, body reading and the one error shape; ``caller`` says who
is calling; ``documents`` are the JSON answers (pydantic models, also the OpenAPI schemas);
``handlers`` do the work over ``ExomiService``; ``routes`` is the route table and its dispatcher;
``openapi`` builds the OpenAPI 2.0 document from the route table and the models; ``functions`` adapts
``azure.functions`` HttpRequest/HttpResponse (the only module that imports azure.functions).
"""
