using System.Management.Automation;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Reads the request log: every request Invoke-AiRequest sent, which backend served it, and why it failed over.</para>
/// </summary>
[Cmdlet(VerbsCommon.Get, "AiRequestLog")]
[OutputType("OllamaContinuity.Failover.RequestLogEntry")]
public sealed class GetAiRequestLogCommand : PSCmdlet
{
    /// <summary>Entries at or after this time.</summary>
    [Parameter(Position = 0)]
    public DateTime Since { get; set; }

    /// <summary>Entries before this time.</summary>
    [Parameter]
    public DateTime Until { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(WorkflowCompleter))]
    public string[]? Workflow { get; set; }

    [Parameter]
    [ValidateSet("Cloud", "Ollama", "None", IgnoreCase = true)]
    public string[]? Backend { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? FailoverReason { get; set; }

    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int Last { get; set; }

    /// <summary>Another log file (default: OLLAMACONTINUITY_LOG_PATH, else the current user's requests.jsonl).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [Alias("LogPath")]
    public string? Path { get; set; }

    protected override void EndProcessing()
    {
        var path = Path is null ? RequestLog.ResolvePath(null) : GetUnresolvedProviderPathFromPSPath(Path);
        if (!File.Exists(path))
        {
            if (Path is not null)
            {
                ThrowTerminatingError(new ErrorRecord(new FileNotFoundException("No request log at " + path, path), "RequestLogNotFound", ErrorCategory.ObjectNotFound, path)
                {
                    ErrorDetails = new ErrorDetails($"No request log at {path}.") { RecommendedAction = "Check the path; without -Path the log is OLLAMACONTINUITY_LOG_PATH or requests.jsonl in the user's state directory (see about_OllamaContinuity)." },
                });
            }

            this.Narrate($"No request log yet at {path}: no request has been sent from this account.");
            return;
        }

        var bound = MyInvocation.BoundParameters;
        var filter = new RequestLogFilter
        {
            Since = bound.ContainsKey(nameof(Since)) ? Local(Since) : null,
            Until = bound.ContainsKey(nameof(Until)) ? Local(Until) : null,
            Workflow = Workflow,
            Backend = Backend,
            FailoverReason = FailoverReason,
            Last = Last,
        };
        if (filter.Since is { } s && filter.Until is { } u && u <= s)
        {
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("-Until must be later than -Since."), "UntilBeforeSince", ErrorCategory.InvalidArgument, Until));
        }

        this.Narrate($"Reading {path}");
        var count = 0;
        foreach (var entry in RequestLogReader.Read(path, filter, (line, problem) => this.Warn($"Skipped line {line} of {path}: {problem}.")))
        {
            count++;
            WriteObject(entry);
        }

        this.Narrate($"{count} matching request(s)");
    }

    private static DateTimeOffset Local(DateTime t) => new(t.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(t, DateTimeKind.Local) : t);
}
