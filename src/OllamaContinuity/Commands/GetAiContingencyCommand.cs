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
        var circuits = engine.GetCircuits().Where(c => c.State is "Open" or "HalfOpen").ToArray();
        var list = new List<ContingencyStatus>();
        if (Workflow is { Length: > 0 })
        {
            foreach (var w in Workflow)
            {
                if (engine.EvaluateContingency(w) is { } d)
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
                list.AddRange(service.List(scope));
            }

            list.AddRange(circuits.Select(c => Automatic(c, "*")));
        }

        if (service.Problem is { } problem)
        {
            this.Warn("A contingency state file could not be read, so its entries are ignored: " + problem);
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
        Active = c.State == "Open",
        Reason = $"circuit {c.State.ToLowerInvariant()}: {c.Reason}",
        Since = c.Since,
        Until = c.Until,
        Endpoint = c.Endpoint,
    };
}
