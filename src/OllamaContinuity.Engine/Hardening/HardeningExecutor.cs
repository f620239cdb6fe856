using System.Text;
using OllamaContinuity.Native;

namespace OllamaContinuity.Hardening;

/// <summary>Performs one <see cref="HardeningStep"/>; native tools only through the runner.</summary>
public sealed class HardeningExecutor(ICommandRunner runner, IMachineEnvironment machine)
{
    /// <summary>Runs a step; returns messages for the verbose stream. Throws <see cref="InvalidOperationException"/> when a tool fails.</summary>
    public async Task<IReadOnlyList<string>> ExecuteAsync(HardeningStep step, CancellationToken cancellationToken = default)
    {
        switch (step)
        {
            case WriteFileStep w:
                WriteFile(w);
                return [w.BackupPath is null ? $"Wrote {w.Path}" : $"Wrote {w.Path}; the previous file is {w.BackupPath}"];
            case SetMachineEnvironmentStep e:
                machine.Set(e.Name, e.Value);
                return [$"Set machine environment variable {e.Name}"];
            case RunCommandStep c:
                await Run(c.Command, cancellationToken).ConfigureAwait(false);
                return [$"Ran {c.Command}"];
            case RestartStep s:
                return await RestartAsync(s, cancellationToken).ConfigureAwait(false);
            default:
                throw new NotSupportedException(step.GetType().Name);
        }
    }

    private async Task<IReadOnlyList<string>> RestartAsync(RestartStep s, CancellationToken ct)
    {
        var done = new List<string>();
        async Task R(CommandInvocation c)
        {
            await Run(c, ct).ConfigureAwait(false);
            done.Add($"Ran {c}");
        }

        switch (s.Platform)
        {
            case HardeningPlatform.Linux:
                await R(CommandInvocation.Of("systemctl", "restart", s.ServiceName)).ConfigureAwait(false);
                break;
            case HardeningPlatform.Windows:
                // The installer runs Ollama as a tray app; some sites install it as a service.
                var query = await runner.RunAsync(CommandInvocation.Of("sc.exe", "query", s.ServiceName), ct).ConfigureAwait(false);
                if (query.Succeeded)
                {
                    var stop = await runner.RunAsync(CommandInvocation.Of("net.exe", "stop", s.ServiceName), ct).ConfigureAwait(false);
                    done.Add($"net.exe stop {s.ServiceName}: exit {stop.ExitCode}");
                    await R(CommandInvocation.Of("net.exe", "start", s.ServiceName)).ConfigureAwait(false);
                }
                else
                {
                    await runner.RunAsync(CommandInvocation.Of("taskkill.exe", "/IM", "ollama app.exe", "/F"), ct).ConfigureAwait(false);
                    await runner.RunAsync(CommandInvocation.Of("taskkill.exe", "/IM", "ollama.exe", "/F"), ct).ConfigureAwait(false);
                    done.Add("Stopped the Ollama app (ollama app.exe, ollama.exe); start Ollama again from the Start menu as the signed-in user so it reads the new machine variables.");
                }

                break;
            case HardeningPlatform.MacOS:
                await runner.RunAsync(CommandInvocation.Of("osascript", "-e", "tell application \"Ollama\" to quit"), ct).ConfigureAwait(false);
                await R(CommandInvocation.Of("open", "-a", "Ollama")).ConfigureAwait(false);
                break;
        }

        return done;
    }

    private async Task Run(CommandInvocation c, CancellationToken ct)
    {
        var result = await runner.RunAsync(c, ct).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"'{c}' failed with exit code {result.ExitCode}: {result.StandardError.Trim()}");
        }
    }

    internal static void WriteFile(WriteFileStep w)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(w.Path))!;
        if (w.Root is { } root)
        {
            // Checked at planning and again now: a link planted between the plan and the write is caught too.
            RootedPath.Require(root, w.Path);
            if (w.BackupPath is { } backup)
            {
                RootedPath.Require(root, backup);
            }
        }

        Directory.CreateDirectory(dir);
        if (w.Root is { } r2)
        {
            RootedPath.Require(r2, dir); // a component created just now by someone else
        }

        if (new FileInfo(w.Path).LinkTarget is { } target)
        {
            // Root writes here: never follow a link someone planted in place of the module's file.
            throw new InvalidOperationException($"{w.Path} is a symbolic link (to {target}); refusing to replace it. Remove the link and run again.");
        }

        if (w.BackupPath is not null && File.Exists(w.Path))
        {
            File.Delete(w.BackupPath); // a planted link at the backup path is removed, not followed
            File.Copy(w.Path, w.BackupPath);
        }

        var temp = Path.Combine(dir, "." + Path.GetFileName(w.Path) + "." + Guid.NewGuid().ToString("n")[..8] + ".tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            // Unit files and LaunchAgents are configuration read by the service manager: root-writable, world-readable
            // (0644, the default); a file holding a secret is owner-only (0600).
            options.UnixCreateMode = w.Mode;
        }

        try
        {
            using (var fs = new FileStream(temp, options))
            {
                fs.Write(Encoding.UTF8.GetBytes(w.Content));
                fs.Flush(flushToDisk: true);
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temp, w.Mode); // exactly the mode asked for, whatever the umask
            }

            File.Move(temp, w.Path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
