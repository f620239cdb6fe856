using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace OllamaContinuity.Contingency;

/// <summary>One manual contingency: a workflow (or all workflows) that skips the cloud, until disabled or expired.</summary>
public sealed record ContingencyEntry
{
    /// <summary>The workflow name or wildcard pattern (<c>hr-*</c>); null for every workflow.</summary>
    public string? Workflow { get; init; }

    public string? Reason { get; init; }

    public DateTimeOffset Since { get; init; }

    /// <summary>When it turns itself off (-Duration); null: until Disable-AiContingency.</summary>
    public DateTimeOffset? Until { get; init; }

    /// <summary>Ask before serving a request of this workflow locally; never silently in a non-interactive session.</summary>
    public bool RequireApproval { get; init; }

    /// <summary>user@host of whoever enabled it.</summary>
    public string? EnabledBy { get; init; }

    public bool IsActive(DateTimeOffset now) => Until is null || Until > now;

    /// <summary>True when this entry covers <paramref name="workflow"/> (case-insensitive, <c>*</c> and <c>?</c> wildcards).</summary>
    public bool Matches(string? workflow) =>
        Workflow is null || (workflow is not null && (Workflow.Contains('*') || Workflow.Contains('?')
            ? Regex.IsMatch(workflow, "^" + Regex.Escape(Workflow).Replace("\\*", ".*").Replace("\\?", ".") + "$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1))
            : string.Equals(Workflow, workflow, StringComparison.OrdinalIgnoreCase)));

    internal bool SameWorkflow(string? workflow) => string.Equals(Workflow, workflow, StringComparison.OrdinalIgnoreCase);
}

/// <summary>The content of a contingency state file.</summary>
internal sealed class ContingencyState
{
    public int Version { get; set; } = 1;

    public List<ContingencyEntry> Entries { get; set; } = [];
}

/// <summary>What Get-, Enable- and Disable-AiContingency write: one contingency (or, with -Workflow, one workflow's verdict).</summary>
public sealed class ContingencyStatus
{
    /// <summary>Where it comes from: Process, User, Machine, Environment (AI_CONTINGENCY_MODE) or Automatic (an open circuit).</summary>
    public required string Source { get; init; }

    /// <summary>The workflow or pattern; '*' for every workflow.</summary>
    public required string Workflow { get; init; }

    /// <summary>True while the cloud is skipped for it.</summary>
    public bool Active { get; init; }

    public string? Reason { get; init; }
    public DateTimeOffset? Since { get; init; }
    public DateTimeOffset? Until { get; init; }
    public bool RequireApproval { get; init; }
    public string? EnabledBy { get; init; }

    /// <summary>For Automatic: the cloud endpoint whose circuit is open.</summary>
    public string? Endpoint { get; init; }

    /// <summary>For Automatic: the circuit's state (Open: the cloud is skipped and probed; CoolingDown: it asked us to wait, Retry-After).</summary>
    public string? CircuitState { get; init; }

    /// <summary>For Automatic: when the last background probe of the cloud started.</summary>
    public DateTimeOffset? LastProbe { get; init; }

    /// <summary>For Automatic: what the last probe found (Success, or the failure class and detail).</summary>
    public string? LastProbeResult { get; init; }

    /// <summary>For Automatic: when the next probe is due; the first one that succeeds closes the circuit.</summary>
    public DateTimeOffset? NextProbe { get; init; }

    /// <summary>Enable/Disable: whether this call changed anything (false: it was like that already).</summary>
    public bool Changed { get; init; }

    /// <summary>The state file (persisted scopes).</summary>
    public string? Path { get; init; }

    [JsonIgnore]
    public TimeSpan? TimeLeft => Until is { } u ? u - DateTimeOffset.UtcNow is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero : null;

    internal static ContingencyStatus From(ContingencyEntry e, string source, bool active, bool changed, string? path) => new()
    {
        Source = source,
        Workflow = e.Workflow ?? "*",
        Active = active,
        Reason = e.Reason,
        Since = e.Since,
        Until = e.Until,
        RequireApproval = e.RequireApproval,
        EnabledBy = e.EnabledBy,
        Changed = changed,
        Path = path,
    };
}
