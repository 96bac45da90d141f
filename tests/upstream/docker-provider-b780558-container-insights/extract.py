"""Reduce Container Insights' AKS MSI onboarding template, its parameter file and the log
agent's Go plugin to what the template's container logs are checked against, as JSON.

- existingClusterOnboarding.json: the ContainerInsights extension data source of the data
  collection rule (name, extensionName, the keys of dataCollectionSettings), the
  namespaceFilteringMode values it allows, the association's name, the omsagent add-on's
  profile as the template writes it.
- existingClusterParam.json: the streams the onboarding sends by default.
- oms.go: the columns of a ContainerLogV2 record (the DataItemLAv2 struct's JSON tags).
- in_kube_events.rb: the columns of a KubeEvents record (the plugin's record keys).
Each reader fails on a shape it does not know, so an upstream change is noticed.
"""

from __future__ import annotations

import json
import re


def _onboarding(text: str) -> dict:
    template = json.loads(text)
    rule = template["variables"]["ciOnlyTemplate"]["resources"][0]
    (extension,) = rule["properties"]["dataSources"]["extensions"]
    settings = extension["extensionSettings"]["dataCollectionSettings"]
    association = template["variables"]["associationName"]
    addon = next(
        resource["properties"]["template"]["resources"][0]["properties"]["addonProfiles"]
        for resource in template["resources"]
        if resource["name"].startswith("[Concat('aks-monitoring-msi-addon'")
    )
    return {
        "dataCollectionRuleKind": rule["kind"],
        "extension": {
            "name": extension["name"],
            "extensionName": extension["extensionName"],
            "dataCollectionSettings": sorted(settings),
        },
        "namespaceFilteringModes": template["parameters"][
            "namespaceFilteringModeForDataCollection"
        ]["allowedValues"],
        "associationName": association,
        "addonProfiles": addon,
    }


def _parameters(text: str) -> dict:
    parameters = json.loads(text)["parameters"]
    return {
        "streams": parameters["streams"]["value"],
        "dataCollectionInterval": parameters["dataCollectionInterval"]["value"],
    }


def _columns(text: str) -> dict:
    match = re.search(r"\ntype DataItemLAv2 struct \{\n(.*?)\n\}\n", text, re.S)
    if not match:
        raise ValueError("no DataItemLAv2 struct in oms.go")
    return {"ContainerLogV2": re.findall(r'`json:"(\w+)"`', match.group(1))}


def _event_columns(text: str) -> dict:
    """The columns of a KubeEvents record, in the order the plugin first sets them."""
    columns = list(dict.fromkeys(re.findall(r'\brecord\["(\w+)"\] =', text)))
    if "Reason" not in columns:
        raise ValueError("no KubeEvents record in in_kube_events.rb")
    return {"KubeEvents": columns}


READERS = {
    "onboarding.json": _onboarding,
    "parameters.json": _parameters,
    "containerlogv2-columns.json": _columns,
    "kubeevents-columns.json": _event_columns,
}


def extract(local_name: str, text: str) -> str:
    return json.dumps(READERS[local_name](text), indent=2) + "\n"
