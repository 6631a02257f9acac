"""One router per resource; every route is thin: dependencies, one service call, a schema out."""
