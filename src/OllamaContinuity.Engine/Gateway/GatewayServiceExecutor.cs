using OllamaContinuity.Hardening;
using OllamaContinuity.Native;

namespace OllamaContinuity.Gateway;

/// <summary>
/// Performs one step of a <see cref="GatewayServicePlan"/>: files through the hardening executor (atomic, inside the
/// root, never through a planted link, with the step's mode), commands through the runner, the Windows service's
/// environment (only to remove what an earlier version put there) through <see cref="IServiceEnvironment"/>. Messages never hold a setting's value.
/// </summary>
public sealed class GatewayServiceExecutor(ICommandRunner runner, IServiceEnvironment serviceEnvironment)
{
    /// <summary>Runs a step; returns a message for the verbose stream. Throws <see cref="InvalidOperationException"/> when a tool fails.</summary>
    public async Task<string> ExecuteAsync(HardeningStep step, CancellationToken cancellationToken = default)
    {
        switch (step)
        {
            case WriteFileStep w:
                HardeningExecutor.WriteFile(w);
                return $"Wrote {w.Path} (mode 0{Convert.ToString((int)w.Mode, 8)})";
            case RemoveFileStep f:
                RemoveFile(f);
                return $"Removed {f.Path}";
            case RemoveServiceEnvironmentStep e:
                serviceEnvironment.Remove(e.ServiceName, e.Names);
                return $"Removed {e.Names.Count} settings from the environment of the service {e.ServiceName}";
            case RunCommandStep c:
                var result = await runner.RunAsync(c.Command, cancellationToken).ConfigureAwait(false);
                if (!result.Succeeded)
                {
                    var why = (result.StandardError.Trim().Length > 0 ? result.StandardError : result.StandardOutput).Trim();
                    throw new InvalidOperationException($"'{c.Command}' failed with exit code {result.ExitCode}: {why}");
                }

                return $"Ran {c.Command}";
            default:
                throw new NotSupportedException(step.GetType().Name);
        }
    }

    internal static void RemoveFile(RemoveFileStep f)
    {
        if (f.Root is { } root)
        {
            // The file's folder must stay inside the root; the file itself may be a link, which is removed, not followed.
            RootedPath.Require(root, Path.GetDirectoryName(f.Path)!);
        }

        File.Delete(f.Path);
    }
}
