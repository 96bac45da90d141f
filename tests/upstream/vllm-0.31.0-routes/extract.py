"""Reduce one vLLM entrypoint module to the part the edge contract checks: the HTTP routes
it declares, the route-registering functions it calls, the routers it includes, the
middlewares it adds and the FastAPI apps it builds, each with the `if` tests (source text)
that must hold for it to happen, and its module-level string constants.

The local name of a stored file is the module path under vllm.entrypoints, e.g.
`serve.sagemaker.api_router.json` for vllm/entrypoints/serve/sagemaker/api_router.py; the
module path resolves relative imports. Only the syntax tree is read: nothing is imported.
"""

from __future__ import annotations

import ast
import json

PACKAGE = "vllm.entrypoints"
HTTP_DECORATORS = {"get", "post", "put", "patch", "delete", "head", "options", "websocket"}


def module_of(local_name: str) -> str:
    return f"{PACKAGE}.{local_name.removesuffix('.json')}".removesuffix(".__init__")


def _is_package(local_name: str) -> bool:
    return local_name.endswith(".__init__.json")


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _text(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _negated(test: ast.expr) -> str:
    return f"not ({ast.unparse(test)})"


def _ends(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise)


class _Module:
    def __init__(self, local_name: str, tree: ast.Module):
        self.module = module_of(local_name)
        self.is_package = _is_package(local_name)
        self.functions = {
            n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        self.found: dict[str, list] = {
            "routes": [],
            "calls": [],
            "includes": [],
            "middlewares": [],
            "apps": [],
        }
        self.constants = self._constants(tree)

    def _constants(self, tree: ast.Module) -> dict:
        constants = {}
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target = node.targets[0]
            if not (isinstance(target, ast.Name) and target.id.isupper()):
                continue
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if isinstance(value, str) or (
                isinstance(value, tuple | list) and all(isinstance(v, str) for v in value)
            ):
                constants[target.id] = value if isinstance(value, str) else list(value)
        return constants

    # -- names --------------------------------------------------------------------------

    def _bind_imports(self, node: ast.stmt, names: dict[str, str]) -> None:
        if isinstance(node, ast.ImportFrom):
            source = _absolute(self.module, self.is_package, node)
            for alias in node.names:
                names[alias.asname or alias.name] = f"{source}.{alias.name}"

    def _qualified(self, expr: ast.expr, names: dict[str, str]) -> str | None:
        if isinstance(expr, ast.Name):
            if expr.id in names:
                return names[expr.id]
            if expr.id in self.functions or expr.id.endswith("router"):
                return f"{self.module}.{expr.id}"
        return None

    # -- walking ------------------------------------------------------------------------

    def walk(self, body: list[ast.stmt], scope: str, when: list[str], names: dict) -> None:
        when = list(when)
        for node in body:
            self._bind_imports(node, names)
            if isinstance(node, ast.If):
                self.walk(node.body, scope, [*when, ast.unparse(node.test)], names)
                self.walk(node.orelse, scope, [*when, _negated(node.test)], names)
                if _ends(node.body) and not node.orelse:
                    # `if x: return` guards everything after it in the same block.
                    when.append(_negated(node.test))
                continue
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                # A route handler's body runs per request, not when routes are registered.
                if not self._decorators(node, scope, when) and scope == "<module>":
                    self.walk(node.body, node.name, [], dict(names))
                continue
            if isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    self.walk(block, scope, when, names)
                continue
            if isinstance(node, ast.With | ast.AsyncWith | ast.For | ast.AsyncFor):
                self.walk(node.body, scope, when, names)
                continue
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                self._call(call, scope, when, names)

    def _decorators(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope, when) -> bool:
        """Record the routes a function's decorators declare; True when there are any."""
        routes = 0
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
                continue
            verb = decorator.func.attr
            if verb not in HTTP_DECORATORS and verb != "api_route" or not decorator.args:
                continue
            methods = [verb.upper()]
            for keyword in decorator.keywords:
                if keyword.arg == "methods":
                    methods = sorted(ast.literal_eval(keyword.value))
            self._route(decorator.func.value, decorator.args[0], methods, False, scope, when)
            routes += 1
        return routes > 0

    def _route(self, owner, path: ast.expr, methods, mount: bool, scope, when) -> None:
        self.found["routes"].append(
            {
                "router": ast.unparse(owner) if owner is not None else None,
                "path": _text(path) or f"<{ast.unparse(path)}>",
                "methods": methods,
                "mount": mount,
                "scope": scope,
                "when": list(when),
            }
        )

    def _call(self, call: ast.Call, scope: str, when: list[str], names: dict) -> None:
        func = call.func
        entry = {"scope": scope, "when": list(when)}
        if isinstance(func, ast.Attribute) and func.attr == "include_router" and call.args:
            router = self._qualified(call.args[0], names)
            self.found["includes"].append({**entry, "router": router})
        elif isinstance(func, ast.Attribute) and func.attr == "add_middleware" and call.args:
            middleware = self._qualified(call.args[0], names) or ast.unparse(call.args[0])
            self.found["middlewares"].append({**entry, "middleware": middleware})
        elif isinstance(func, ast.Attribute) and func.attr in ("mount", "add_api_route"):
            self._route(func.value, call.args[0], ["*"], func.attr == "mount", scope, when)
        elif isinstance(func, ast.Name) and func.id == "Mount" and call.args:
            self._route(None, call.args[0], ["*"], True, scope, when)
        elif isinstance(func, ast.Name) and func.id == "FastAPI":
            keywords = {k.arg: ast.unparse(k.value) for k in call.keywords if k.arg}
            self.found["apps"].append({**entry, "keywords": keywords})
        else:
            target = self._qualified(func, names)
            if target and target.startswith(PACKAGE):
                self.found["calls"].append({**entry, "target": target})


def extract(local_name: str, text: str) -> str:
    tree = ast.parse(text)
    module = _Module(local_name, tree)
    names: dict[str, str] = {}
    for node in ast.walk(tree):  # a function may use a name imported further down
        if isinstance(node, ast.ImportFrom) and node.col_offset == 0:
            module._bind_imports(node, names)
    module.walk(tree.body, "<module>", [], names)
    document = {"module": module.module, "constants": module.constants, **module.found}
    return json.dumps(document, indent=1, sort_keys=True) + "\n"
