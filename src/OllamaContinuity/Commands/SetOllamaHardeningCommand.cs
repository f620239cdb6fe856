using System.Management.Automation;
using OllamaContinuity.Hardening;
using OllamaContinuity.Internal;
using OllamaContinuity.Native;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Applies the production hardening checklist to the Ollama host: bind address, origins, service user, resource limits and sandboxing.</para>
/// </summary>
[Cmdlet(VerbsCommon.Set, "OllamaHardening", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType("OllamaContinuity.Hardening.HardeningSetting")]
public sealed class SetOllamaHardeningCommand : AsyncCmdlet
{
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string? BindAddress { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? AllowedOrigins { get; set; }

    [Parameter]
    public SwitchParameter DisableWebUI { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string ServiceUser { get; set; } = "ollama";

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? MemoryMax { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CPUQuota { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? TasksMax { get; set; }

    [Parameter]
    public SwitchParameter Sandbox { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Root { get; set; }

    [Parameter]
    public SwitchParameter Restart { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string DropInName { get; set; } = HardeningRequestDefaults.DropInName;

    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessing()
    {
        var request = new HardeningRequest
        {
            BindAddress = BindAddress,
            AllowedOrigins = AllowedOrigins,
            DisableWebUI = DisableWebUI.IsPresent,
            ServiceUser = ServiceUser,
            ServiceUserGiven = MyInvocation.BoundParameters.ContainsKey(nameof(ServiceUser)),
            MemoryMax = MemoryMax,
            CPUQuota = CPUQuota,
            TasksMax = TasksMax,
            Sandbox = Sandbox.IsPresent,
            Root = Root is null ? null : GetUnresolvedProviderPathFromPSPath(Root),
            Restart = Restart.IsPresent,
            DropInName = DropInName,
            Force = Force.IsPresent,
        };

        HardeningPlan plan;
        try
        {
            plan = RunAsync(ct => HardeningPlanner.PlanAsync(request, ProcessCommandRunner.Default, MachineEnvironment.Instance, TimeProvider.System, ct));
        }
        catch (HardeningValidationException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, e.ErrorId, ErrorCategory.InvalidArgument, e.ParamName)
            {
                ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = e.RecommendedAction },
            });
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(new ErrorRecord(e, "ReadFailed", ErrorCategory.ReadError, request.Root ?? "/")
            {
                ErrorDetails = new ErrorDetails($"Could not read the current settings: {e.Message}") { RecommendedAction = Advice.Elevate + "." },
            });
            return;
        }

        foreach (var w in plan.Warnings)
        {
            this.Warn(w);
        }

        if (plan.Steps.Count == 0)
        {
            this.Narrate("Nothing to change: every setting already has the requested value.");
        }

        var executor = new HardeningExecutor(ProcessCommandRunner.Default, MachineEnvironment.Instance);
        var applied = true;
        foreach (var step in plan.Steps)
        {
            if (!ShouldProcess(step.Target, step.Action))
            {
                applied = false;
                continue;
            }

            try
            {
                var messages = RunAsync(ct => executor.ExecuteAsync(step, ct));
                foreach (var m in messages)
                {
                    this.Narrate(m);
                }
            }
            catch (HardeningValidationException e)
            {
                // A link planted under -Root between planning and writing (PathOutsideRoot).
                ThrowTerminatingError(new ErrorRecord(e, e.ErrorId, ErrorCategory.SecurityError, step.Target)
                {
                    ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = e.RecommendedAction },
                });
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                var denied = e is UnauthorizedAccessException;
                ThrowTerminatingError(new ErrorRecord(e, denied ? "AccessDenied" : "HardeningStepFailed", denied ? ErrorCategory.PermissionDenied : ErrorCategory.InvalidOperation, step.Target)
                {
                    ErrorDetails = new ErrorDetails($"{step.Action} on {step.Target} failed: {e.Message}")
                    {
                        RecommendedAction = denied ? Advice.Elevate + ", or use -Root to prepare an image." : "Fix the cause in the message and run the same command again; finished steps are not repeated.",
                    },
                });
            }
        }

        if (!applied)
        {
            return; // -WhatIf, or the user declined: nothing was changed, so there is nothing to report as changed.
        }

        foreach (var s in plan.Settings)
        {
            WriteObject(s);
        }
    }
}

/// <summary>Defaults shown in parameter declarations (engine constants may not appear in the cmdlet's attributes or initialisers of reflected members).</summary>
internal static class HardeningRequestDefaults
{
    public const string DropInName = "90-ollamacontinuity";
}
