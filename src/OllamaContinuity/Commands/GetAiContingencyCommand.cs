using System.Management.Automation;
using OllamaContinuity.Internal;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Shows where contingency mode is on: manual (Process, User, Machine), AI_CONTINGENCY_MODE, and automatic (open circuits).</para>
/// </summary>
[Cmdlet(VerbsCommon.Get, "AiContingency")]
[OutputType("OllamaContinuity.Contingency.ContingencyStatus")]
public sealed class GetAiContingencyCommand : PSCmdlet
{
    /// <summary>With workflows: one verdict per workflow (Active or not, and why).</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(WorkflowCompleter))]
    public string[]? Workflow { get; set; }

    [Parameter]
    [ValidateSet("Environment", "Process", "User", "Machine", "Automatic")]
    public string[]? Source { get; set; }

    protected override void ProcessRecord() => Run();

    private void Run()
    {
        var engine = FailoverEngine.Shared;
        var service = ContingencyService.Default;
        var circuits = engine.GetCircuits().Where(c => c.State is "Open" or "CoolingDown").ToArray();
        var list = new List<ContingencyStatus>();
        if (Workflow is { Length: > 0 })
        {
            foreach (var w in Workflow)
            {
                var d = engine.EvaluateContingency(w);
                if (d?.Warning is { } warning)
                {
                    this.Warn(warning);
                }

                if (d?.Unreadable is { } unreadable)
                {
                    WriteError(ContingencyCmdlets.Unreadable(new InvalidDataException(unreadable), service.PathOf(ContingencyCmdlets.ParseScope(d.Source)), w));
                }
                else if (d is not null)
                {
                    list.Add(new ContingencyStatus { Source = d.Source, Workflow = w, Active = true, Reason = d.Reason, Since = d.Since, Until = d.Until, RequireApproval = d.RequireApproval });
                }
                else if (circuits.FirstOrDefault() is { } c)
                {
                    list.Add(Automatic(c, w));
                }
                else
                {
                    list.Add(new ContingencyStatus { Source = "None", Workflow = w, Active = false });
                }
            }
        }
        else
        {
            if (EnvironmentContingencySource.IsOn(Environment.GetEnvironmentVariable(EnvironmentContingencySource.VariableName)))
            {
                list.Add(new ContingencyStatus { Source = "Environment", Workflow = "*", Active = true, Reason = EnvironmentContingencySource.VariableName + " is set" });
            }

            foreach (var scope in new[] { ContinuityScope.Machine, ContinuityScope.User, ContinuityScope.Process })
            {
                var state = service.Read(scope);
                if (state.Problem is { } problem)
                {
                    WriteError(ContingencyCmdlets.Unreadable(problem, state.Path, scope.ToString()));
                    if (state.LastGood is { } lg)
                    {
                        var now = service.Time.GetUtcNow();
                        var held = lg.Entries.Where(e => e.IsActive(now)).Select(e => e.Workflow ?? "*").ToArray();
                        this.Warn($"The last good copy {lg.Path} (saved {lg.SavedAt:u}) has {(held.Length == 0 ? "no active contingency" : "contingency for " + string.Join(", ", held))}. "
                            + "Requests for those workflows are served from Ollama; every other request fails until the file is fixed, deleted or replaced by that copy.");
                    }

                    continue;
                }

                list.AddRange(service.List(scope));
            }

            list.AddRange(circuits.Select(c => Automatic(c, "*")));
        }

        foreach (var s in list.Where(s => Source is null || Source.Contains(s.Source, StringComparer.OrdinalIgnoreCase)))
        {
            WriteObject(s);
        }
    }

    private static ContingencyStatus Automatic(CircuitSnapshot c, string workflow) => new()
    {
        Source = "Automatic",
        Workflow = workflow,
        Active = true,
        Reason = c.State == "Open" ? $"circuit open: {c.Reason}" : $"cooling down: {c.Reason}",
        Since = c.Since,
        Until = c.Until,
        Endpoint = c.Endpoint,
        CircuitState = c.State,
        LastProbe = c.LastProbe,
        LastProbeResult = c.LastProbeResult,
        NextProbe = c.NextProbe,
    };
}
