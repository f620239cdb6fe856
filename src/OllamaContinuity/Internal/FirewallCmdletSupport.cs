using System.Collections;
using System.Management.Automation;
using System.Text;
using System.Text.Json;
using OllamaContinuity.Firewall;
using OllamaContinuity.Native;

namespace OllamaContinuity.Internal;

/// <summary>
/// What the three firewall cmdlets share: resolving the backend, mapping engine exceptions to ErrorRecords, the
/// -WhatIf/-Confirm text, progress, and the runner that executes Windows NetSecurity cmdlet calls in this session.
/// Engine types appear only here and in method bodies, never in a cmdlet's signature.
/// </summary>
internal static class FirewallCmdletSupport
{
    public static readonly string[] BackendNames = ["Auto", "Ufw", "Firewalld", "Nftables", "Iptables", "WindowsFirewall", "Pf"];

    /// <summary>Resolves the backend (Auto detects through the runner) and gives the manager that drives it.</summary>
    public static async Task<(FirewallManager Manager, FirewallBackend Backend)> ResolveAsync(AsyncCmdlet cmdlet, string backendName, CancellationToken cancellationToken)
    {
        var kind = Enum.Parse<FirewallBackendKind>(backendName, ignoreCase: true);
        var environment = FirewallEnvironment.Default;
        var manager = new FirewallManager(environment);
        if (kind == FirewallBackendKind.Auto)
        {
            var detected = await manager.DetectWithReasonAsync(cancellationToken).ConfigureAwait(false);
            kind = detected.Kind;
            cmdlet.Post(() => cmdlet.Narrate($"Firewall: {detected.Kind}, detected because {detected.Reason}."));
        }
        else
        {
            cmdlet.Post(() => cmdlet.Narrate($"Firewall: {kind}, as named with -Backend."));
        }

        if (kind == FirewallBackendKind.WindowsFirewall && environment.Runner is ProcessCommandRunner)
        {
            // Windows Defender Firewall is driven through the NetSecurity cmdlets, in this PowerShell session.
            var windows = environment.Clone();
            windows.Runner = new PowerShellCmdletRunner(cmdlet);
            manager = new FirewallManager(windows);
        }

        return (manager, manager.Create(kind));
    }

    public static ErrorRecord ToErrorRecord(Exception e, object? target) => e switch
    {
        FirewallInputException input => new ErrorRecord(input, input.ErrorId, ErrorCategory.InvalidArgument, input.Value ?? target)
        {
            ErrorDetails = new ErrorDetails(input.Message)
            {
                RecommendedAction = input.ErrorId == "AllowFromEverywhere"
                    ? "Give the networks that may reach Ollama (for example 192.168.1.0/24), or pass -Force to allow everyone."
                    : input.ErrorId == "AllowFromTooMany"
                    ? "Merge the sources into fewer, wider CIDRs, or choose a backend that applies large sets (-Backend Nftables, Iptables or Firewalld)."
                    : "Give IPv4/IPv6 addresses or CIDRs only, such as 192.168.1.0/24, 10.8.0.0/24 or fd00::/64.",
            },
        },
        FirewallBackendNotFoundException notFound => new ErrorRecord(notFound, "FirewallBackendNotFound", ErrorCategory.NotInstalled, target)
        {
            ErrorDetails = new ErrorDetails(notFound.Message) { RecommendedAction = "Install or start a firewall (firewalld, ufw, nftables or iptables), or name one with -Backend." },
        },
        FirewallCommandException failed => new ErrorRecord(failed, "FirewallCommandFailed", ErrorCategory.InvalidResult, failed.FailedCommand.ToString())
        {
            ErrorDetails = new ErrorDetails(failed.Message)
            {
                RecommendedAction = failed.RollbackFailures.Count == 0
                    ? "Fix the cause reported by the tool and run the command again; what this run had changed was rolled back."
                    : "Check the rules named in the message by hand: rolling them back failed.",
            },
        },
        _ => new ErrorRecord(e, "FirewallError", ErrorCategory.NotSpecified, target),
    };

    /// <summary>The -WhatIf/-Confirm text: the change, then every command in order (with any standard input).</summary>
    public static string Describe(string action, FirewallPlan plan)
    {
        var sb = new StringBuilder();
        sb.Append(action).Append(" on ").Append(plan.Backend).Append(" for TCP port ").Append(plan.Port);
        if (!plan.IsRemoval)
        {
            sb.Append(" (allow from ").Append(string.Join(", ", plan.DesiredAllowFrom.Select(n => n.ToShort()))).Append(" and loopback; drop everyone else)");
        }

        sb.Append(". Commands, in order:");
        var i = 0;
        foreach (var step in plan.Steps)
        {
            sb.Append('\n').Append(++i).Append(". ").Append(step.Command);
        }

        return sb.ToString();
    }

    /// <summary>
    /// The changing half of Set and Remove: an empty plan is reported as unchanged; otherwise one ShouldProcess
    /// names every command (that is the -WhatIf text), then the plan runs with a progress bar and the state read
    /// back is written. <paramref name="run"/> is the cmdlet's RunAsync.
    /// </summary>
    public static void ConfirmAndApply(AsyncCmdlet cmdlet, Func<Func<CancellationToken, Task<FirewallRuleInfo>>, FirewallRuleInfo> run,
        string caption, string action, string unchanged, FirewallManager manager, FirewallBackend backend, FirewallPlan plan)
    {
        var current = plan.Current;
        cmdlet.Narrate($"Read {backend.SourceOfTruth(plan.Port)}: the module's rule for TCP {plan.Port} is " +
            (!current.Present ? "absent." : (current.Active ? "in force" : "present but not in force") + $", allowing {(current.AllowFrom.Count == 0 ? "no source" : string.Join(", ", current.AllowFrom.Select(n => n.ToShort())))}."));
        if (plan.IsEmpty)
        {
            cmdlet.Narrate(unchanged);
            cmdlet.WriteObject(FirewallManager.ToInfo(backend, plan.Port, plan.Current, false, []));
            return;
        }

        cmdlet.Narrate(plan.IsRemoval
            ? $"Plan: {plan.Steps.Count} command(s) to remove the module's rule, each with its undo should a later one fail."
            : $"Plan: {plan.Steps.Count} command(s) to allow TCP {plan.Port} from {string.Join(", ", plan.DesiredAllowFrom.Select(n => n.ToShort()))} and loopback only, each with its undo should a later one fail.");
        var description = Describe(action, plan);
        if (!cmdlet.ShouldProcess(description, description + "\nRun these commands?", caption))
        {
            return;
        }

        var progress = new Reporter(cmdlet, $"{caption} ({plan.Backend}, port {plan.Port})");
        var info = run(ct => manager.ApplyAsync(backend, plan, progress, ct));
        cmdlet.WriteProgress(new ProgressRecord(1, caption, "Done") { RecordType = ProgressRecordType.Completed });
        cmdlet.Narrate($"Read back from {info.SourceOfTruth}: the rule is {(info.Active ? "in force" : info.Present ? "present but NOT in force" : "absent")}"
            + (info.AllowFrom.Count == 0 ? "." : $", allowing {info.AllowFrom}."));
        cmdlet.WriteObject(info);
    }

    private sealed class Reporter(AsyncCmdlet cmdlet, string activity) : IProgress<(int Done, int Total, string Command)>
    {
        public void Report((int Done, int Total, string Command) value)
        {
            var text = value.Command.Split('\n')[0];
            var record = new ProgressRecord(1, activity, text.Length > 0 ? text : activity)
            {
                PercentComplete = value.Total == 0 ? 0 : Math.Clamp(value.Done * 100 / value.Total, 0, 100),
            };
            cmdlet.Post(() =>
            {
                cmdlet.Narrate("Running: " + value.Command);
                cmdlet.WriteProgress(record);
            });
        }
    }

    /// <summary>
    /// Runs a cmdlet call (NetSecurity, NetTCPIP) on the pipeline thread, in the current session: FileName is the
    /// cmdlet, Arguments are "-Parameter", "value" pairs and switches. Output objects come back as one JSON line each;
    /// errors make a non-zero exit code with their text as standard error. Also used by
    /// <see cref="CmdletOrProcessCommandRunner"/> (Test-OllamaExposure).
    /// </summary>
    internal sealed class PowerShellCmdletRunner(AsyncCmdlet cmdlet) : ICommandRunner
    {
        public Task<CommandResult> RunAsync(CommandInvocation command, CancellationToken cancellationToken = default) =>
            cmdlet.InvokeOnPipelineThreadAsync(() => Invoke(command));

        private static CommandResult Invoke(CommandInvocation command)
        {
            using var ps = PowerShell.Create(RunspaceMode.CurrentRunspace);
            ps.AddCommand(command.FileName);
            var args = command.Arguments;
            for (var i = 0; i < args.Count; i++)
            {
                var name = args[i].TrimStart('-');
                if (i + 1 < args.Count && !IsParameterName(args[i + 1]))
                {
                    var value = args[++i];
                    ps.AddParameter(name, WindowsFirewallBackend.ArrayParameters.Contains(name) ? value.Split(',') : value);
                }
                else
                {
                    ps.AddParameter(name); // a switch such as -All
                }
            }

            try
            {
                var output = ps.Invoke();
                var stdout = new StringBuilder();
                foreach (var o in output)
                {
                    stdout.Append(ToJson(o)).Append('\n');
                }

                var errors = string.Join("\n", ps.Streams.Error.Select(e => e.ToString()));
                return new CommandResult(ps.HadErrors ? 1 : 0, stdout.ToString(), errors);
            }
            catch (RuntimeException e)
            {
                return new CommandResult(1, "", e.Message);
            }
        }

        private static bool IsParameterName(string arg) => arg.Length > 1 && arg[0] == '-' && char.IsAsciiLetter(arg[1]);

        private static string ToJson(PSObject o)
        {
            var map = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var p in o.Properties)
            {
                object? value;
                try
                {
                    value = p.Value;
                }
                catch (GetValueException)
                {
                    continue;
                }

                value = value is PSObject pso ? pso.BaseObject : value;
                map[p.Name] = value switch
                {
                    null => null,
                    string s => s,
                    IEnumerable list => list.Cast<object?>().Select(x => x?.ToString()).ToArray(),
                    _ when value.GetType().IsPrimitive || value is Enum or decimal => value.ToString(),
                    _ => null,
                };
            }

            return JsonSerializer.Serialize(map);
        }
    }
}
