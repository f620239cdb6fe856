using System.Management.Automation;
using OllamaContinuity.Internal;
using OllamaContinuity.Contingency;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Reads the contingency log: the prompt and output of every request served locally while contingency was on.</para>
/// </summary>
[Cmdlet(VerbsCommon.Get, "AiContingencyLog")]
[OutputType("OllamaContinuity.Contingency.ContingencyLogEntry")]
public sealed class GetAiContingencyLogCommand : PSCmdlet
{
    [Parameter(Position = 0)]
    public DateTime Since { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(WorkflowCompleter))]
    public string[]? Workflow { get; set; }

    /// <summary>Another log file (default: the current user's contingency-log.jsonl).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Path { get; set; }

    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int Last { get; set; }

    protected override void EndProcessing() => Run();

    private void Run()
    {
        var path = Path is null ? StatePaths.ContingencyLog : GetUnresolvedProviderPathFromPSPath(Path);
        if (!File.Exists(path))
        {
            if (Path is not null)
            {
                ThrowTerminatingError(new ErrorRecord(new FileNotFoundException("No contingency log at " + path, path), "ContingencyLogNotFound", ErrorCategory.ObjectNotFound, path)
                {
                    ErrorDetails = new ErrorDetails($"No contingency log at {path}.") { RecommendedAction = "Check the path; the default log is in the user's state directory (see about_OllamaContinuity)." },
                });
            }

            this.Narrate($"No contingency log yet at {path}: nothing has been served locally under contingency.");
            return;
        }

        DateTimeOffset? since = MyInvocation.BoundParameters.ContainsKey(nameof(Since)) ? new DateTimeOffset(Since.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(Since, DateTimeKind.Local) : Since) : null;
        IEnumerable<ContingencyLogEntry> entries = ContingencyLog.Read(path, since, Workflow, problem => this.Warn(problem.ToString()));
        if (Last > 0)
        {
            entries = entries.TakeLast(Last);
        }

        try
        {
            foreach (var e in entries)
            {
                WriteObject(e);
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(new ErrorRecord(e, "ContingencyLogUnreadable", e is UnauthorizedAccessException ? ErrorCategory.PermissionDenied : ErrorCategory.ReadError, path)
            {
                ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = "Point -Path at the contingency log file (a regular file of JSON lines)." },
            });
        }
    }
}
