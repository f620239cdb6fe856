using System.Management.Automation;
using OllamaContinuity.Gateway;
using OllamaContinuity.Hardening;
using OllamaContinuity.Native;

namespace OllamaContinuity.Internal;

/// <summary>
/// What Install-AiGateway and Uninstall-AiGateway share: plan, warn, ask ShouldProcess right before each step (the
/// -WhatIf text names every file with its mode and content, secrets redacted, and every command), run it, map the
/// engine's exceptions to stable ErrorIds, and write the result. Engine types stay out of the cmdlets' signatures.
/// </summary>
internal static class GatewayServiceSupport
{
    public static HardeningPlatform Platform(string? platform) =>
        platform is null ? HardeningRequest.CurrentPlatform : Enum.Parse<HardeningPlatform>(platform, ignoreCase: true);

    /// <summary>Plans with <paramref name="plan"/> and applies the plan; writes one result object unless -WhatIf or a declined step.</summary>
    public static void Apply(AsyncCmdlet cmdlet, Func<Func<CancellationToken, Task<object>>, object> run,
        Func<ICommandRunner, CancellationToken, Task<GatewayServicePlan>> plan, HardeningPlatform platform, string? root)
    {
        // Planned for another operating system (-WhatIf), its tools (sc.exe, launchctl) are not here: every query answers
        // "not installed", so the plan shown is the fresh installation, and nothing of this machine is asked.
        var foreign = platform != HardeningRequest.CurrentPlatform && root is null;
        ICommandRunner runner = foreign
            ? new RecordingCommandRunner { Respond = c => new CommandResult(1, "", $"{c.FileName} is not run: planned for {platform} from another system") }
            : new CmdletOrProcessCommandRunner(cmdlet);
        var whatIf = LanguagePrimitives.IsTrue(cmdlet.MyInvocation.BoundParameters.TryGetValue("WhatIf", out var w) ? w : cmdlet.SessionState.PSVariable.GetValue("WhatIfPreference"));
        if (platform != HardeningRequest.CurrentPlatform && root is null && !whatIf)
        {
            cmdlet.ThrowTerminatingError(new ErrorRecord(new InvalidOperationException($"-Platform {platform} plans a service for another operating system; it cannot be applied on this one."),
                "PlatformNotThisMachine", ErrorCategory.InvalidOperation, platform.ToString())
            {
                ErrorDetails = new ErrorDetails($"-Platform {platform} plans a service for another operating system; it cannot be applied on this one.")
                {
                    RecommendedAction = $"Add -WhatIf to see the exact {platform} plan (every file and command), or run the command on the {platform} machine" + (platform == HardeningPlatform.Windows ? "." : ", or stage an image with -Root."),
                },
            });
            return;
        }

        GatewayServicePlan p;
        try
        {
            p = (GatewayServicePlan)run(async ct => await plan(runner, ct).ConfigureAwait(false));
        }
        catch (HardeningValidationException e)
        {
            cmdlet.ThrowTerminatingError(new ErrorRecord(e, e.ErrorId, Category(e.ErrorId), e.ParamName)
            {
                ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = e.RecommendedAction },
            });
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            cmdlet.ThrowTerminatingError(new ErrorRecord(e, "ReadFailed", ErrorCategory.ReadError, root ?? "/")
            {
                ErrorDetails = new ErrorDetails($"Could not read the current service files: {e.Message}") { RecommendedAction = Advice.Elevate + "." },
            });
            return;
        }

        if (foreign)
        {
            cmdlet.Warn($"Planned for {platform} from this machine: the plan shown is a fresh installation (the {platform} machine's current state was not read).");
        }

        foreach (var warning in p.Warnings)
        {
            cmdlet.Warn(warning);
        }

        if (p.Steps.Count == 0)
        {
            cmdlet.Narrate(p.Status == "NotInstalled" ? $"The gateway service {p.Name} is not installed; nothing to remove." : $"Nothing to change: the gateway service {p.Name} already has these settings.");
        }

        var executor = new GatewayServiceExecutor(runner, platform == HardeningPlatform.Windows && OperatingSystem.IsWindows() ? WindowsServiceEnvironment.Instance : new InMemoryServiceEnvironment());
        var applied = true;
        foreach (var step in p.Steps)
        {
            if (!cmdlet.ShouldProcess(step.Target, step.Action))
            {
                applied = false;
                continue;
            }

            try
            {
                cmdlet.Narrate((string)run(async ct => await executor.ExecuteAsync(step, ct).ConfigureAwait(false)));
            }
            catch (HardeningValidationException e)
            {
                cmdlet.ThrowTerminatingError(new ErrorRecord(e, e.ErrorId, ErrorCategory.SecurityError, step.Target)
                {
                    ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = e.RecommendedAction },
                });
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or PlatformNotSupportedException or System.Security.SecurityException)
            {
                var denied = e is UnauthorizedAccessException or System.Security.SecurityException;
                cmdlet.ThrowTerminatingError(new ErrorRecord(e, denied ? "AccessDenied" : "GatewayServiceStepFailed", denied ? ErrorCategory.PermissionDenied : ErrorCategory.InvalidOperation, step.Target)
                {
                    ErrorDetails = new ErrorDetails($"{FirstLine(step.Action)} on {step.Target} failed: {e.Message}")
                    {
                        RecommendedAction = denied ? Advice.Elevate + ", or use -Root to stage an image." : "Fix the cause in the message and run the same command again; steps already done are not repeated.",
                    },
                });
            }
        }

        if (applied)
        {
            cmdlet.WriteObject(p.ToResult());
        }
    }

    private static ErrorCategory Category(string errorId) => errorId switch
    {
        "NonLoopbackBindNeedsForce" or "PathOutsideRoot" => ErrorCategory.SecurityError,
        "TokensFileNotFound" or "RootNotFound" or "GatewayNotInstalled" => ErrorCategory.ObjectNotFound,
        "TokensFileEmpty" => ErrorCategory.InvalidData,
        "RootNotSupported" => ErrorCategory.NotImplemented,
        _ => ErrorCategory.InvalidArgument,
    };

    private static string FirstLine(string s) => s.Split('\n')[0];
}
