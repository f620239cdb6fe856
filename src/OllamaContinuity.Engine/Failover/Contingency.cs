namespace OllamaContinuity.Failover;

/// <summary>A source's verdict: skip the cloud for this request.</summary>
/// <param name="Source">Where it came from: Environment, Process, User, Machine or Automatic.</param>
public sealed record ContingencyDecision(string Source, string? Reason, DateTimeOffset? Since = null, DateTimeOffset? Until = null)
{
    /// <summary>Ask before serving locally (compliance workflows), as <see cref="AiRequest.RequireFailoverApproval"/> does.</summary>
    public bool RequireApproval { get; init; }

    /// <summary>
    /// Set when the source cannot tell whether contingency is on (its state cannot be read): the request must not go
    /// to the cloud, and fails with this text (<see cref="AiRequestFailure.ContingencyStateUnreadable"/>). Fail closed.
    /// </summary>
    public string? Unreadable { get; init; }

    /// <summary>A problem to show the user although the decision stands (served from Ollama while a state file is damaged).</summary>
    public string? Warning { get; init; }
}

/// <summary>
/// The one interface through which the failover client reads contingency. A source returns a decision when
/// contingency is on for the workflow (null workflow: requests with no workflow name), or null.
/// </summary>
public interface IContingencySource
{
    ContingencyDecision? Evaluate(string? workflow, DateTimeOffset now);
}

/// <summary>The seed's switch: <c>AI_CONTINGENCY_MODE=true</c> routes every request straight to Ollama.</summary>
public sealed class EnvironmentContingencySource : IContingencySource
{
    public const string VariableName = "AI_CONTINGENCY_MODE";

    public ContingencyDecision? Evaluate(string? workflow, DateTimeOffset now) =>
        IsOn(Environment.GetEnvironmentVariable(VariableName))
            ? new ContingencyDecision("Environment", $"{VariableName} is set")
            : null;

    /// <summary>True for 'true', '1', 'yes', 'on' (any case), as admins write it.</summary>
    public static bool IsOn(string? value) =>
        value is not null && (value.Trim().Equals("true", StringComparison.OrdinalIgnoreCase) || value.Trim() == "1" ||
                              value.Trim().Equals("yes", StringComparison.OrdinalIgnoreCase) || value.Trim().Equals("on", StringComparison.OrdinalIgnoreCase));
}
