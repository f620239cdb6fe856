using System.Globalization;
using System.Net;
using System.Text.Json;
using OllamaContinuity.Hardening;
using OllamaContinuity.Internal;
using OllamaContinuity.Native;

namespace OllamaContinuity.Gateway;

/// <summary>
/// Turns a <see cref="GatewayServiceRequest"/> into the exact, ordered plan that makes the gateway a service (and the
/// one that removes it): files with their full content and mode, commands as argument lists. Planning reads only
/// (files under the root, <c>systemctl is-enabled</c>, <c>sc.exe qc</c>, <c>launchctl print</c> through the runner);
/// <see cref="GatewayServiceExecutor"/> performs one step at a time. With a root, files are staged under it and the
/// service manager's commands are listed in <see cref="GatewayServicePlan.NotRun"/>, never run.
/// </summary>
public static partial class GatewayServicePlanner
{
    public const string LinuxUnitName = "ollamacontinuity-gateway.service";
    public const string LinuxUnitPath = "/etc/systemd/system/" + LinuxUnitName;
    public const string LinuxEnvironmentFile = "/etc/ollamacontinuity/gateway.env";
    public const string LinuxTokensFile = "/etc/ollamacontinuity/gateway-tokens.json";
    public const string LinuxStateDirectory = "ollamacontinuity-gateway";
    public const string LinuxCredential = "gateway-tokens";

    public const string WindowsServiceName = "OllamaContinuityGateway";
    public const string WindowsDataDirectory = @"C:\ProgramData\OllamaContinuity\Gateway";
    public const string WindowsAccount = @"NT AUTHORITY\LocalService";
    public const string WindowsDisplayName = "OllamaContinuity AI failover gateway";
    public const string WindowsEnvironmentFile = WindowsDataDirectory + @"\gateway.env";

    public const string MacLabel = "com.ollamacontinuity.gateway";
    public const string MacPlist = "/Library/LaunchDaemons/" + MacLabel + ".plist";
    public const string MacDataDirectory = "/Library/Application Support/OllamaContinuity/Gateway";
    public const string MacAccount = "nobody";

    internal const string Description = "OllamaContinuity AI failover gateway: OpenAI, Anthropic and Ollama APIs for applications, cloud AI first and local Ollama on failure";
    internal const string Redacted = "(redacted)";

    private const UnixFileMode Mode644 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode Mode600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>The order of the backend settings in the environment file (others follow by name).</summary>
    private static readonly string[] EnvironmentOrder =
        ["CLOUD_PROVIDER", "CLOUD_API_URL", "CLOUD_MODEL", "CLOUD_API_KEY", "CLOUD_TIMEOUT", "OLLAMA_URL", "OLLAMA_MODEL", "OLLAMA_TIMEOUT", "CONNECT_TIMEOUT", "FIRST_TOKEN_TIMEOUT"];

    /// <summary>The client tokens file a service uses when none is given.</summary>
    public static string DefaultTokensFile(HardeningPlatform platform) => platform switch
    {
        HardeningPlatform.Windows => WindowsDataDirectory + @"\gateway-tokens.json",
        HardeningPlatform.MacOS => MacDataDirectory + "/gateway-tokens.json",
        _ => LinuxTokensFile,
    };

    /// <summary>The dotnet host a service on <paramref name="platform"/> runs when none is given and the platform is not this machine's.</summary>
    public static string DefaultDotnetPath(HardeningPlatform platform) => platform switch
    {
        HardeningPlatform.Windows => @"C:\Program Files\dotnet\dotnet.exe",
        HardeningPlatform.MacOS => "/usr/local/share/dotnet/dotnet",
        _ => "/usr/bin/dotnet",
    };

    /// <summary>Where the module's Gateway folder usually is on <paramref name="platform"/> (installed for all users), when planning for another system.</summary>
    public static string DefaultGatewayDirectory(HardeningPlatform platform) => platform switch
    {
        HardeningPlatform.Windows => @"C:\Program Files\PowerShell\Modules\OllamaContinuity\Gateway",
        _ => "/usr/local/share/powershell/Modules/OllamaContinuity/Gateway",
    };

    /// <summary>The service's name on the platform.</summary>
    public static string ServiceName(HardeningPlatform platform) => platform switch
    {
        HardeningPlatform.Windows => WindowsServiceName,
        HardeningPlatform.MacOS => MacLabel,
        _ => LinuxUnitName,
    };

    /// <summary>True when a setting's value is a secret: it is written to the service's protected store and shown as (redacted).</summary>
    public static bool IsSecret(string name) =>
        name.Contains("KEY", StringComparison.OrdinalIgnoreCase) || name.Contains("TOKEN", StringComparison.OrdinalIgnoreCase) && !name.EndsWith("_TIMEOUT", StringComparison.OrdinalIgnoreCase)
        || name.Contains("SECRET", StringComparison.OrdinalIgnoreCase) || name.Contains("PASSWORD", StringComparison.OrdinalIgnoreCase);

    /// <summary>Checks every setting before anything runs; throws <see cref="HardeningValidationException"/>. Returns warnings.</summary>
    public static IReadOnlyList<string> Validate(GatewayServiceRequest r)
    {
        var warnings = new List<string>();
        if (r.Root is { } root && !Directory.Exists(root))
        {
            throw new HardeningValidationException("RootNotFound", "Root", $"The root directory '{root}' does not exist.", "Create the directory or give the path of a mounted image.");
        }

        if (r.Root is not null && r.Platform == HardeningPlatform.Windows)
        {
            throw new HardeningValidationException("RootNotSupported", "Root", "-Root applies to Linux and macOS files; a Windows service lives in the registry of the running system.",
                "Run without -Root on the Windows machine itself (use -WhatIf to see the plan).");
        }

        if (!IPAddress.TryParse(r.Bind == "localhost" ? "127.0.0.1" : r.Bind, out var address))
        {
            throw new HardeningValidationException("InvalidBindAddress", "BindAddress", $"'{r.Bind}' is not an IP address.", "Give an address such as 127.0.0.1, ::1 or this machine's LAN address.");
        }

        if (r.Port is < 1 or > 65535)
        {
            throw new HardeningValidationException("InvalidPort", "Port", $"Port {r.Port} is not a fixed TCP port (1-65535): a service needs one that applications can be given.", "Give a port such as 11435.");
        }

        var tokensHost = TokensOnHost(r);
        var loopback = IPAddress.IsLoopback(address);
        if (!loopback && !r.Force)
        {
            throw new HardeningValidationException("NonLoopbackBindNeedsForce", "BindAddress",
                $"Binding {r.Bind} exposes the gateway beyond this machine; the gateway binds 127.0.0.1 unless -Force is given.",
                "Keep the default (127.0.0.1), or pass -Force on purpose with a tokens file: client tokens are then the only thing between the network and the AI backends.");
        }

        if (tokensHost is not null)
        {
            var exists = File.Exists(tokensHost);
            if (!exists && (r.TokensFile is not null || !loopback))
            {
                throw new HardeningValidationException("TokensFileNotFound", "TokensFile",
                    loopback
                        ? $"The client tokens file '{tokensHost}' does not exist."
                        : $"Binding {r.Bind} needs client tokens that exist before the service starts; '{tokensHost}' does not exist.",
                    "Give -TokensFile with a file such as {\"tokens\":[{\"name\":\"billing-app\",\"token\":\"<32+ random characters>\"}]} (owner-only), or bind loopback and let Install-AiGateway create one.");
            }

            if (exists && GatewayControl.FirstToken(tokensHost) is null)
            {
                throw new HardeningValidationException("TokensFileEmpty", "TokensFile", $"The client tokens file '{tokensHost}' holds no token (or is not a tokens file).",
                    "Add at least one entry: {\"tokens\":[{\"name\":\"billing-app\",\"token\":\"<32+ random characters>\"}]}.");
            }
        }
        else if (!loopback && r.TokensFile is null)
        {
            throw new HardeningValidationException("TokensFileNotFound", "TokensFile",
                $"Binding {r.Bind} needs a client tokens file that exists; none was given.",
                "Give -TokensFile with the path of the tokens file on that machine.");
        }
        else if (r.TokensFile is not null)
        {
            warnings.Add($"The tokens file '{r.TokensFile}' is on a {r.Platform} machine and was not checked here: it must exist and hold tokens there.");
        }

        foreach (var (name, value) in r.Environment)
        {
            if (!IsVariableName(name))
            {
                throw new HardeningValidationException("InvalidSetting", name, $"'{name}' is not a valid environment variable name.", "Use names such as CLOUD_API_URL.");
            }

            if (value.Any(char.IsControl))
            {
                // The value itself is never repeated: it may be the key.
                throw new HardeningValidationException("InvalidSetting", name, $"The value of {name} holds a line break or another control character.", $"Give {name} on one line.");
            }
        }

        foreach (var text in r.Models.Append(r.GatewayDirectory).Append(r.DotnetPath).Append(r.TokensFile ?? "").Append(r.LogPath ?? ""))
        {
            if (text.Any(char.IsControl))
            {
                throw new HardeningValidationException("InvalidSetting", "Model", "A model name or path holds a line break or another control character.", "Give each on one line.");
            }
        }

        if (r.Platform == HardeningRequest.CurrentPlatform && r.Root is null && !File.Exists(Path.Combine(r.GatewayDirectory, GatewayControl.GatewayAssembly)))
        {
            throw new HardeningValidationException("GatewayNotInstalled", "GatewayDirectory",
                $"The gateway is not laid out in {r.GatewayDirectory} ({GatewayControl.GatewayAssembly} is missing).", "Build the module with build.ps1, or give -GatewayDirectory.");
        }

        if (!loopback)
        {
            warnings.Add($"The gateway listens on {r.Bind} (forced): restrict port {r.Port} to the application hosts with the firewall; client tokens are required on every request.");
        }

        return warnings;
    }

    /// <summary>Plans the installation (or the update) of the gateway service.</summary>
    public static async Task<GatewayServicePlan> PlanInstallAsync(GatewayServiceRequest r, ICommandRunner runner, IServiceEnvironment serviceEnvironment, CancellationToken cancellationToken = default)
    {
        var warnings = Validate(r).ToList();
        return r.Platform switch
        {
            HardeningPlatform.Windows => await PlanWindowsAsync(r, runner, serviceEnvironment, warnings, cancellationToken).ConfigureAwait(false),
            HardeningPlatform.MacOS => await PlanMacAsync(r, runner, warnings, cancellationToken).ConfigureAwait(false),
            _ => await PlanLinuxAsync(r, runner, warnings, cancellationToken).ConfigureAwait(false),
        };
    }

    /// <summary>Plans the removal of the gateway service: stop, disable, remove its files, reload. The tokens file and the state (request log) stay.</summary>
    /// <param name="serviceEnvironment">On Windows: where the settings file is looked for (null: this machine).</param>
    public static async Task<GatewayServicePlan> PlanUninstallAsync(HardeningPlatform platform, string? root, ICommandRunner runner, CancellationToken cancellationToken = default,
        IServiceEnvironment? serviceEnvironment = null)
    {
        if (root is not null && !Directory.Exists(root))
        {
            throw new HardeningValidationException("RootNotFound", "Root", $"The root directory '{root}' does not exist.", "Create the directory or give the path of a mounted image.");
        }

        if (root is not null && platform == HardeningPlatform.Windows)
        {
            throw new HardeningValidationException("RootNotSupported", "Root", "-Root applies to Linux and macOS files; a Windows service lives in the registry of the running system.",
                "Run without -Root on the Windows machine itself (use -WhatIf to see the plan).");
        }

        var steps = new List<HardeningStep>();
        var notRun = new List<CommandInvocation>();
        var files = new List<GatewayServiceFile>();
        var warnings = new List<string>();
        var local = IsLocal(platform, root);
        void Command(CommandInvocation c, string description)
        {
            if (root is null)
            {
                steps.Add(new RunCommandStep(c, description));
            }
            else
            {
                notRun.Add(c);
            }
        }

        void Remove(string targetPath, string description)
        {
            var staged = Staged(root, targetPath);
            if (root is not null)
            {
                RootedPath.Require(root, staged);
            }

            if (local && (File.Exists(staged) || new FileInfo(staged).LinkTarget is not null))
            {
                files.Add(new GatewayServiceFile(staged, ModeText(staged), ""));
                steps.Add(new RemoveFileStep(staged, description) { Root = root });
            }
        }

        switch (platform)
        {
            case HardeningPlatform.Windows:
                var qc = await runner.RunAsync(CommandInvocation.Of("sc.exe", "qc", WindowsServiceName), cancellationToken).ConfigureAwait(false);
                if (qc.Succeeded)
                {
                    Command(CommandInvocation.Of("Stop-Service", "-Name", WindowsServiceName, "-Force"), "Stop the gateway service");
                    Command(CommandInvocation.Of("sc.exe", "delete", WindowsServiceName), "Delete the gateway service");
                }

                // The settings file goes with the service (the tokens, state and logs beside it stay).
                if ((serviceEnvironment ?? WindowsServiceEnvironment.Instance).ReadFile(WindowsEnvironmentFile) is not null)
                {
                    files.Add(new GatewayServiceFile(WindowsEnvironmentFile, "ACL", ""));
                    steps.Add(new RemoveFileStep(WindowsEnvironmentFile, "Remove the gateway's settings file (backend settings and cloud key)"));
                }

                break;
            case HardeningPlatform.MacOS:
                var loaded = root is null && (await runner.RunAsync(CommandInvocation.Of("launchctl", "print", "system/" + MacLabel), cancellationToken).ConfigureAwait(false)).Succeeded;
                if (loaded)
                {
                    Command(CommandInvocation.Of("launchctl", "bootout", "system/" + MacLabel), "Stop and unload the gateway daemon");
                }

                Remove(MacPlist, "Remove the launchd daemon");
                break;
            default:
                var unitExists = local && File.Exists(Staged(root, LinuxUnitPath));
                if (unitExists)
                {
                    Command(CommandInvocation.Of("systemctl", "disable", "--now", LinuxUnitName), "Stop the gateway and disable it at boot");
                }

                Remove(LinuxUnitPath, "Remove the systemd unit");
                Remove(LinuxEnvironmentFile, "Remove the gateway's settings file (backend settings and cloud key)");
                if (unitExists)
                {
                    Command(CommandInvocation.Of("systemctl", "daemon-reload"), "Reload systemd units");
                }

                break;
        }

        var removed = steps.Count > 0 || notRun.Count > 0;
        if (removed)
        {
            warnings.Add(platform switch
            {
                HardeningPlatform.Windows => $"Kept: the client tokens, the gateway's state and its logs in {WindowsDataDirectory} (remove them by hand when no application needs them).",
                HardeningPlatform.MacOS => $"Kept: the client tokens and the gateway's state in {MacDataDirectory} (remove them by hand when no application needs them).",
                _ => $"Kept: the client tokens ({LinuxTokensFile} when created by Install-AiGateway) and the gateway's state and request log (/var/lib/private/{LinuxStateDirectory}).",
            });
        }

        return new GatewayServicePlan
        {
            Name = ServiceName(platform),
            Platform = platform,
            Status = removed ? "Removed" : "NotInstalled",
            Root = root,
            Files = files,
            Steps = steps,
            NotRun = notRun,
            Warnings = warnings,
        };
    }

    private static async Task<GatewayServicePlan> PlanLinuxAsync(GatewayServiceRequest r, ICommandRunner runner, List<string> warnings, CancellationToken ct)
    {
        var root = r.Root;
        var local = IsLocal(r.Platform, root);
        var tokens = r.TokensFile ?? LinuxTokensFile;
        var steps = new List<HardeningStep>();
        var files = new List<GatewayServiceFile>();
        var unitPath = Staged(root, LinuxUnitPath);
        var envPath = Staged(root, LinuxEnvironmentFile);
        var unitBefore = local ? ReadIfExists(root, unitPath) : null;
        foreach (var under in new[] { r.GatewayDirectory, r.DotnetPath })
        {
            if (HardeningPlanner.IsUnder(under, "/home") || HardeningPlanner.IsUnder(under, "/root") || HardeningPlanner.IsUnder(under, "/run/user"))
            {
                warnings.Add($"'{under}' is under a home directory: the service's own user cannot read it there (ProtectHome=read-only is set instead of yes). Install the module and dotnet for all users (for example under /usr/local/share/powershell/Modules and /usr/share/dotnet).");
            }
        }

        var homeReadOnly = warnings.Any(w => w.Contains("ProtectHome=read-only", StringComparison.Ordinal));
        if (r.LogPath is { } log)
        {
            warnings.Add($"The request log '{log}' is outside the service's state directory: its folder must exist and be writable by the service's dynamic user (the default, /var/lib/{LinuxStateDirectory}, needs nothing).");
        }

        AddTokensStep(r, root, local, tokens, Mode600, steps, files);
        AddFile(root, local, envPath, RenderEnvironmentFile(r.Environment), RenderEnvironmentFile(r.Environment, redact: true), Mode600,
            "Write the gateway's backend settings (owner-only; read by systemd as root)", steps, files);
        var unit = RenderUnit(r, tokens, homeReadOnly);
        AddFile(root, local, unitPath, unit, unit, Mode644, "Write the sandboxed systemd unit", steps, files);

        var changed = steps.Count > 0;
        var unitChanged = steps.OfType<WriteFileStep>().Any(w => w.Path == unitPath);
        var existed = unitBefore is not null;
        // The running state matters only for an installed unit on this machine (an image has no running state).
        var enabled = !existed || root is not null || (await runner.RunAsync(CommandInvocation.Of("systemctl", "is-enabled", "--quiet", LinuxUnitName), ct).ConfigureAwait(false)).Succeeded;
        var active = !existed || root is not null || (await runner.RunAsync(CommandInvocation.Of("systemctl", "is-active", "--quiet", LinuxUnitName), ct).ConfigureAwait(false)).Succeeded;
        var commands = LinuxCommands(existed, unitChanged, changed, enabled, active);
        return Finish(r, unitBefore is null ? "Installed" : null, steps, files, commands, warnings, "DynamicUser (" + LinuxStateDirectory + ")");
    }

    /// <summary>
    /// The systemctl commands after the files: a new unit is reloaded and enabled with --now; an installed one is
    /// reloaded when its unit changed, enabled when it is not, restarted when anything changed, started when it was
    /// stopped; nothing when all is as asked.
    /// </summary>
    internal static List<(CommandInvocation Command, string Description)> LinuxCommands(bool existed, bool unitChanged, bool changed, bool enabled, bool active)
    {
        var commands = new List<(CommandInvocation, string)>();
        if (!existed)
        {
            commands.Add((CommandInvocation.Of("systemctl", "daemon-reload"), "Reload systemd units"));
            commands.Add((CommandInvocation.Of("systemctl", "enable", "--now", LinuxUnitName), "Start the gateway now and at every boot"));
            return commands;
        }

        if (unitChanged)
        {
            commands.Add((CommandInvocation.Of("systemctl", "daemon-reload"), "Reload systemd units"));
        }

        if (!enabled)
        {
            commands.Add((CommandInvocation.Of("systemctl", "enable", LinuxUnitName), "Start the gateway at every boot"));
        }

        if (changed)
        {
            commands.Add((CommandInvocation.Of("systemctl", "restart", LinuxUnitName), "Restart the gateway with the new settings"));
        }
        else if (!active)
        {
            commands.Add((CommandInvocation.Of("systemctl", "start", LinuxUnitName), "Start the gateway"));
        }

        return commands;
    }

    private static async Task<GatewayServicePlan> PlanWindowsAsync(GatewayServiceRequest r, ICommandRunner runner, IServiceEnvironment serviceEnvironment, List<string> warnings, CancellationToken ct)
    {
        var tokens = r.TokensFile ?? DefaultTokensFile(HardeningPlatform.Windows);
        var steps = new List<HardeningStep>();
        var files = new List<GatewayServiceFile>();
        var local = IsLocal(r.Platform, null);
        var binPath = WindowsCommandLine(new[] { r.DotnetPath, Path.Join(r.GatewayDirectory, GatewayControl.GatewayAssembly).Replace('/', '\\') }
            .Concat(GatewayArguments(r, tokens, WindowsDataDirectory + @"\gateway.json", r.LogPath ?? WindowsDataDirectory + @"\requests.jsonl"))
            .Append("--console-log").Append(WindowsDataDirectory + @"\gateway.log")
            .Append("--environment-file").Append(WindowsEnvironmentFile));
        var qc = await runner.RunAsync(CommandInvocation.Of("sc.exe", "qc", WindowsServiceName), ct).ConfigureAwait(false);
        var exists = qc.Succeeded;
        var config = exists ? ParseScQc(qc.StandardOutput) : new Dictionary<string, string>();
        // Planned from another system, the default tokens file is known only by the service: the first install created it.
        var tokensMissing = r.TokensFile is null && (local ? !File.Exists(tokens) : !exists);
        // The settings (the cloud key among them) go to a file in the data folder, whose ACL lets only SYSTEM,
        // Administrators and LocalService read it; the gateway reads it with --environment-file.
        var settings = RenderEnvironmentFile(r.Environment, header: WindowsEnvironmentHeader);
        var settingsShown = RenderEnvironmentFile(r.Environment, redact: true, header: WindowsEnvironmentHeader);
        var settingsBefore = serviceEnvironment.ReadFile(WindowsEnvironmentFile);
        // An earlier version put the settings in the service's registry environment, which local users can read: removed.
        var leftInRegistry = (serviceEnvironment.Read(WindowsServiceName) ?? []).Select(EntryName)
            .Where(n => EnvironmentOrder.Contains(n, StringComparer.OrdinalIgnoreCase) || r.Environment.Keys.Contains(n, StringComparer.OrdinalIgnoreCase) || IsSecret(n))
            .Distinct(StringComparer.OrdinalIgnoreCase).ToArray();

        if (!exists || tokensMissing)
        {
            steps.Add(new RunCommandStep(CommandInvocation.Of("New-Item", "-ItemType", "Directory", "-Path", WindowsDataDirectory, "-Force"), "Create the gateway's data folder"));
            steps.Add(new RunCommandStep(CommandInvocation.Of("icacls.exe", WindowsDataDirectory, "/inheritance:r", "/grant:r",
                "*S-1-5-18:(OI)(CI)F", "*S-1-5-32-544:(OI)(CI)F", "*S-1-5-19:(OI)(CI)M"), "Limit the data folder to SYSTEM, Administrators and the service's LocalService account"));
        }

        if (tokensMissing)
        {
            var content = NewTokensFile();
            steps.Add(new WriteFileStep(tokens, content, null, "Create the client tokens file with one random token (the token is not shown; read it from the file)"));
            files.Add(new GatewayServiceFile(tokens, "ACL", Redacted));
        }

        files.Add(new GatewayServiceFile(WindowsEnvironmentFile, "ACL", settingsShown));
        if (settingsBefore != settings)
        {
            var verb = settingsBefore is null ? "Create" : "Replace";
            steps.Add(new WriteFileStep(WindowsEnvironmentFile, settings, null,
                $"{verb} gateway.env (ACL of the data folder: SYSTEM, Administrators, LocalService): Write the gateway's backend settings (read with --environment-file)\n{settingsShown.TrimEnd('\n')}"));
        }

        if (!exists)
        {
            steps.Add(new RunCommandStep(CommandInvocation.Of("sc.exe", "create", WindowsServiceName, "binPath=", binPath, "start=", "auto", "obj=", WindowsAccount, "DisplayName=", WindowsDisplayName), "Create the gateway service"));
            steps.Add(new RunCommandStep(CommandInvocation.Of("sc.exe", "description", WindowsServiceName, Description), "Describe the gateway service"));
            steps.Add(new RunCommandStep(CommandInvocation.Of("sc.exe", "failure", WindowsServiceName, "reset=", "86400", "actions=", "restart/5000/restart/5000/restart/60000"), "Restart the gateway when it fails"));
        }
        else if (config.GetValueOrDefault("BINARY_PATH_NAME") != binPath || !config.GetValueOrDefault("START_TYPE", "").Contains("AUTO_START", StringComparison.Ordinal)
            || !string.Equals(config.GetValueOrDefault("SERVICE_START_NAME"), WindowsAccount, StringComparison.OrdinalIgnoreCase))
        {
            steps.Add(new RunCommandStep(CommandInvocation.Of("sc.exe", "config", WindowsServiceName, "binPath=", binPath, "start=", "auto", "obj=", WindowsAccount), "Update the gateway service's command line"));
        }

        if (exists && leftInRegistry.Length > 0)
        {
            steps.Add(new RemoveServiceEnvironmentStep(WindowsServiceName, leftInRegistry,
                "Remove the settings from the service's registry environment (readable by local users; they are in gateway.env now): " + string.Join(", ", leftInRegistry)));
        }

        var commands = new List<(CommandInvocation, string)>();
        if (!exists)
        {
            commands.Add((CommandInvocation.Of("Start-Service", "-Name", WindowsServiceName), "Start the gateway service"));
        }
        else if (steps.Count > 0)
        {
            commands.Add((CommandInvocation.Of("Restart-Service", "-Name", WindowsServiceName, "-Force"), "Restart the gateway with the new settings"));
        }

        return Finish(r, exists ? null : "Installed", steps, files, commands, warnings, WindowsAccount);
    }

    private static async Task<GatewayServicePlan> PlanMacAsync(GatewayServiceRequest r, ICommandRunner runner, List<string> warnings, CancellationToken ct)
    {
        var root = r.Root;
        var local = IsLocal(r.Platform, root);
        var tokens = r.TokensFile ?? DefaultTokensFile(HardeningPlatform.MacOS);
        var steps = new List<HardeningStep>();
        var files = new List<GatewayServiceFile>();
        var plistPath = Staged(root, MacPlist);
        var before = local ? ReadIfExists(root, plistPath) : null;
        var loaded = root is null && (await runner.RunAsync(CommandInvocation.Of("launchctl", "print", "system/" + MacLabel), ct).ConfigureAwait(false)).Succeeded;
        if (r.TokensFile is not null && !HardeningPlanner.IsUnder(r.TokensFile, MacDataDirectory))
        {
            warnings.Add($"The daemon runs as {MacAccount}: the tokens file '{r.TokensFile}' must be readable by that account (only {MacDataDirectory} is handed to it).");
        }

        AddTokensStep(r, root, local, tokens, Mode600, steps, files);
        var tokensCreated = steps.Count > 0;
        AddFile(root, local, plistPath, RenderPlist(r, tokens), RenderPlist(r, tokens, redact: true), Mode600,
            "Write the launchd daemon (owner-only: it holds the backend settings)", steps, files);
        var changed = steps.Count > 0;
        var commands = new List<(CommandInvocation, string)>();
        if (changed && loaded)
        {
            commands.Add((CommandInvocation.Of("launchctl", "bootout", "system/" + MacLabel), "Stop and unload the gateway daemon"));
        }

        if (before is null || tokensCreated)
        {
            commands.Add((CommandInvocation.Of("/bin/mkdir", "-p", MacDataDirectory), "Create the gateway's data folder"));
            commands.Add((CommandInvocation.Of("/usr/sbin/chown", "-R", MacAccount + ":" + MacAccount, MacDataDirectory), $"Hand the data folder (state, tokens, log) to {MacAccount}"));
            commands.Add((CommandInvocation.Of("/bin/chmod", "0700", MacDataDirectory), "Keep the data folder owner-only"));
        }

        if (changed || !loaded)
        {
            commands.Add((CommandInvocation.Of("launchctl", "enable", "system/" + MacLabel), "Allow the daemon to load at boot"));
            commands.Add((CommandInvocation.Of("launchctl", "bootstrap", "system", MacPlist), "Load and start the gateway daemon"));
        }

        if (root is not null && !changed)
        {
            commands.Clear();
        }

        return Finish(r, before is null ? "Installed" : null, steps, files, commands, warnings, MacAccount);
    }

    private static GatewayServicePlan Finish(GatewayServiceRequest r, string? fresh, List<HardeningStep> steps, List<GatewayServiceFile> files,
        List<(CommandInvocation Command, string Description)> commands, List<string> warnings, string account)
    {
        var notRun = new List<CommandInvocation>();
        foreach (var (command, description) in commands)
        {
            if (r.Root is null)
            {
                steps.Add(new RunCommandStep(command, description));
            }
            else
            {
                notRun.Add(command);
            }
        }

        if (r.Root is not null && notRun.Count > 0)
        {
            warnings.Add($"Staged under {r.Root}: no service manager command was run. On the target, run: {string.Join("; ", notRun)}");
        }

        var host = IPAddress.TryParse(r.Bind == "localhost" ? "127.0.0.1" : r.Bind, out var a) && a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{a}]" : r.Bind;
        return new GatewayServicePlan
        {
            Name = ServiceName(r.Platform),
            Platform = r.Platform,
            Status = steps.Count == 0 && notRun.Count == 0 ? "Unchanged" : fresh ?? "Updated",
            Url = $"http://{host}:{r.Port.ToString(CultureInfo.InvariantCulture)}",
            ServiceAccount = account,
            Root = r.Root,
            Files = files,
            Steps = steps,
            NotRun = notRun,
            Warnings = warnings,
        };
    }

    /// <summary>The gateway's command line after the dll: the same options Start-AiGateway passes, with the service's own paths.</summary>
    internal static List<string> GatewayArguments(GatewayServiceRequest r, string tokensFile, string stateFile, string? logPath)
    {
        var args = new List<string> { "--bind", r.Bind, "--port", r.Port.ToString(CultureInfo.InvariantCulture), "--tokens-file", tokensFile, "--state-file", stateFile };
        GatewayControl.AddLimitArguments(args, r.Force, r.MaxBodyBytes, r.MaxConcurrentRequests, r.RatePerMinute, r.Models);
        if (logPath is not null)
        {
            args.AddRange(["--log-path", logPath]);
        }

        return args;
    }

    /// <summary>Reads the name/value lines of <c>sc.exe qc</c>.</summary>
    internal static Dictionary<string, string> ParseScQc(string output)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in output.Replace("\r\n", "\n").Split('\n'))
        {
            var colon = line.IndexOf(':');
            if (colon > 0)
            {
                map.TryAdd(line[..colon].Trim(), line[(colon + 1)..].Trim());
            }
        }

        return map;
    }

    /// <summary>A value as shown in -WhatIf, verbose and output: secrets redacted, URLs without user info or query.</summary>
    internal static string Display(string name, string value)
    {
        if (IsSecret(name))
        {
            return Redacted;
        }

        if (name.EndsWith("_URL", StringComparison.OrdinalIgnoreCase))
        {
            return string.Join(',', value.Split(',').Select(u => Uri.TryCreate(u.Trim(), UriKind.Absolute, out var uri) && (uri.UserInfo.Length > 0 || uri.Query.Length > 0 || uri.Fragment.Length > 0) ? Redact.Endpoint(uri) : u));
        }

        return value;
    }

    private static void AddTokensStep(GatewayServiceRequest r, string? root, bool local, string tokens, UnixFileMode mode, List<HardeningStep> steps, List<GatewayServiceFile> files)
    {
        var staged = Staged(root, tokens);
        if (root is not null)
        {
            RootedPath.Require(root, staged);
        }

        if (r.TokensFile is null && !(local && File.Exists(staged)))
        {
            steps.Add(new WriteFileStep(staged, NewTokensFile(), null, "Create the client tokens file with one random token (mode 0600; the token is not shown: read it from the file)") { Root = root, Mode = mode });
            files.Add(new GatewayServiceFile(staged, "0600", Redacted));
        }
        else if (r.TokensFile is null && local)
        {
            files.Add(new GatewayServiceFile(staged, ModeText(staged), Redacted)); // created by an earlier run: still the service's
        }
    }

    private static void AddFile(string? root, bool local, string staged, string content, string shown, UnixFileMode mode, string what, List<HardeningStep> steps, List<GatewayServiceFile> files)
    {
        if (root is not null)
        {
            RootedPath.Require(root, staged);
        }

        var modeText = ModeText(mode);
        files.Add(new GatewayServiceFile(staged, modeText, shown));
        var old = local ? ReadIfExists(root, staged) : null;
        var sameMode = old is not null && (OperatingSystem.IsWindows() || File.GetUnixFileMode(staged) == mode);
        if (old == content && sameMode)
        {
            return;
        }

        var verb = old is null ? "Create" : old == content ? "Set the mode of" : "Replace";
        steps.Add(new WriteFileStep(staged, content, null, $"{verb} {Path.GetFileName(staged)} (mode {modeText}): {what}\n{shown.TrimEnd('\n')}") { Root = root, Mode = mode });
    }

    /// <summary>Whether this machine's files are the target's: the platform is this one, or a root stages its files.</summary>
    private static bool IsLocal(HardeningPlatform platform, string? root) => root is not null || platform == HardeningRequest.CurrentPlatform;

    private static string? TokensOnHost(GatewayServiceRequest r)
    {
        if (!IsLocal(r.Platform, r.Root))
        {
            return null;
        }

        var path = Staged(r.Root, r.TokensFile ?? DefaultTokensFile(r.Platform));
        if (r.Root is not null)
        {
            RootedPath.Require(r.Root, path);
        }

        return path;
    }

    private static string Staged(string? root, string targetPath) => root is null ? targetPath : Path.Combine(root, targetPath.TrimStart('/'));

    private static string? ReadIfExists(string? root, string path)
    {
        if (root is not null)
        {
            RootedPath.Require(root, path);
        }

        return File.Exists(path) ? File.ReadAllText(path) : null;
    }

    private static string ModeText(string path) =>
        OperatingSystem.IsWindows() || !File.Exists(path) ? "" : ModeText(File.GetUnixFileMode(path));

    private static string ModeText(UnixFileMode mode) => "0" + Convert.ToString((int)mode, 8).PadLeft(3, '0');

    private static IEnumerable<KeyValuePair<string, string>> Ordered(IReadOnlyDictionary<string, string> env) =>
        EnvironmentOrder.Where(env.ContainsKey).Select(k => new KeyValuePair<string, string>(k, env[k]))
            .Concat(env.Where(kv => !EnvironmentOrder.Contains(kv.Key)).OrderBy(kv => kv.Key, StringComparer.Ordinal));

    private static string NewTokensFile()
    {
        var token = "oc_" + Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return JsonSerializer.Serialize(new { tokens = new[] { new { name = "default", token } } }, new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>The entries of a NAME=value list without the given names (compared as Windows does, ignoring case).</summary>
    internal static string[] WithoutNames(IEnumerable<string> entries, IReadOnlyCollection<string> names) =>
        entries.Where(e => !names.Contains(EntryName(e), StringComparer.OrdinalIgnoreCase)).ToArray();

    private static string EntryName(string entry) => entry.IndexOf('=') is var i and > 0 ? entry[..i] : entry;

    private static bool IsVariableName(string name) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
}
