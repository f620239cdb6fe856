using System.Text.Json.Nodes;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Alerts;

/// <summary>Builds the alert text and the webhook bodies (generic JSON, Teams Adaptive Card, Slack blocks). No secrets go in.</summary>
public static class AlertPayload
{
    public static string Title(ContinuityEventKind kind) => kind switch
    {
        ContinuityEventKind.CircuitOpened => "Cloud AI unavailable: failing over to Ollama",
        ContinuityEventKind.CircuitHalfOpened => "Cloud AI: probing for recovery",
        ContinuityEventKind.CircuitClosed => "Cloud AI recovered",
        ContinuityEventKind.AllBackendsFailed => "AI unavailable: the cloud and every Ollama server failed",
        ContinuityEventKind.ContingencyEnabled => "AI contingency mode enabled",
        ContinuityEventKind.ContingencyDisabled => "AI contingency mode disabled",
        _ => kind.ToString(),
    };

    public static string Severity(ContinuityEventKind kind) => kind switch
    {
        ContinuityEventKind.AllBackendsFailed => "critical",
        ContinuityEventKind.CircuitOpened => "warning",
        ContinuityEventKind.ContingencyEnabled => "warning",
        _ => "info",
    };

    /// <summary>One line for the system log and the message body.</summary>
    public static string Message(ContinuityEvent e)
    {
        var parts = new List<string> { Title(e.Kind) };
        if (e.Endpoint is not null) parts.Add("endpoint " + e.Endpoint);
        if (e.Workflow is not null) parts.Add("workflow " + e.Workflow);
        if (e.Reason is not null) parts.Add("reason: " + e.Reason);
        if (e.Until is { } u) parts.Add("until " + u.ToString("u"));
        parts.Add("host " + Environment.MachineName);
        return string.Join("; ", parts);
    }

    public static string Build(ContinuityEvent e, AlertFormat format)
    {
        var title = Title(e.Kind);
        var facts = new List<(string, string)> { ("Host", Environment.MachineName), ("Time", e.Timestamp.ToString("u")) };
        if (e.Endpoint is not null) facts.Add(("Endpoint", e.Endpoint));
        if (e.Workflow is not null) facts.Add(("Workflow", e.Workflow));
        if (e.Reason is not null) facts.Add(("Reason", e.Reason));
        if (e.Until is { } u) facts.Add(("Until", u.ToString("u")));

        JsonNode node = format switch
        {
            AlertFormat.Teams => new JsonObject
            {
                ["type"] = "message",
                ["summary"] = title,
                ["attachments"] = new JsonArray(new JsonObject
                {
                    ["contentType"] = "application/vnd.microsoft.card.adaptive",
                    ["content"] = new JsonObject
                    {
                        ["$schema"] = "http://adaptivecards.io/schemas/adaptive-card.json",
                        ["type"] = "AdaptiveCard",
                        ["version"] = "1.4",
                        ["body"] = new JsonArray(
                            new JsonObject { ["type"] = "TextBlock", ["size"] = "Medium", ["weight"] = "Bolder", ["wrap"] = true, ["text"] = title },
                            new JsonObject { ["type"] = "FactSet", ["facts"] = new JsonArray(facts.Select(f => (JsonNode)new JsonObject { ["title"] = f.Item1, ["value"] = f.Item2 }).ToArray()) }),
                    },
                }),
            },
            AlertFormat.Slack => new JsonObject
            {
                ["text"] = title + " (" + Environment.MachineName + ")",
                ["blocks"] = new JsonArray(
                    new JsonObject { ["type"] = "header", ["text"] = new JsonObject { ["type"] = "plain_text", ["text"] = title } },
                    new JsonObject
                    {
                        ["type"] = "section",
                        ["fields"] = new JsonArray(facts.Select(f => (JsonNode)new JsonObject { ["type"] = "mrkdwn", ["text"] = $"*{f.Item1}*\n{f.Item2}" }).ToArray()),
                    }),
            },
            _ => new JsonObject
            {
                ["source"] = "OllamaContinuity",
                ["kind"] = e.Kind.ToString(),
                ["severity"] = Severity(e.Kind),
                ["title"] = title,
                ["message"] = Message(e),
                ["timestamp"] = e.Timestamp.ToString("o"),
                ["host"] = Environment.MachineName,
                ["endpoint"] = e.Endpoint,
                ["workflow"] = e.Workflow,
                ["reason"] = e.Reason,
                ["until"] = e.Until?.ToString("o"),
            },
        };
        return node.ToJsonString();
    }
}
