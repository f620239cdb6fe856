using OllamaContinuity.Hardening;
using OllamaContinuity.Native;

namespace OllamaContinuity.Gateway;

/// <summary>
/// What Install-AiGateway / Uninstall-AiGateway were asked to do: the gateway as a service of the platform's service
/// manager (a sandboxed systemd unit, a Windows service, a launchd daemon), with the same settings as Start-AiGateway.
/// </summary>
public sealed record GatewayServiceRequest
{
    /// <summary>The platform whose service manager is planned for. The default value is this machine's.</summary>
    public HardeningPlatform Platform { get; init; } = HardeningRequest.CurrentPlatform;

    /// <summary>The folder holding OllamaContinuity.Gateway.dll as the service sees it (the module's Gateway/ folder).</summary>
    public required string GatewayDirectory { get; init; }

    /// <summary>The dotnet host that runs the gateway, as the service sees it. The default value is <see cref="GatewayControl.DotnetHost"/>.</summary>
    public string DotnetPath { get; init; } = GatewayControl.DotnetHost();

    /// <summary>The address to listen on. The default value is 127.0.0.1; anything else needs <see cref="Force"/> and client tokens.</summary>
    public string Bind { get; init; } = "127.0.0.1";

    /// <summary>The TCP port (1-65535: a service needs a fixed one). The default value is 11435.</summary>
    public int Port { get; init; } = 11435;

    /// <summary>Allow a non-loopback address.</summary>
    public bool Force { get; init; }

    /// <summary>
    /// The client tokens file as the service sees it (with <see cref="Root"/>: a path inside the image). The default
    /// value is null: the platform's <see cref="GatewayServicePlanner.DefaultTokensFile"/>, created with one random
    /// token when it does not exist and the gateway binds loopback.
    /// </summary>
    public string? TokensFile { get; init; }

    /// <summary>--max-body-bytes. The default value is null (the gateway's 4 MiB).</summary>
    public long? MaxBodyBytes { get; init; }

    /// <summary>--max-concurrency. The default value is null (the gateway's 64).</summary>
    public int? MaxConcurrentRequests { get; init; }

    /// <summary>--rate-per-minute. The default value is null (the gateway's 600).</summary>
    public int? RatePerMinute { get; init; }

    /// <summary>Extra model names clients may ask for (--model). The default value is none.</summary>
    public IReadOnlyList<string> Models { get; init; } = [];

    /// <summary>The request log path as the service sees it. The default value is null (the service's state directory).</summary>
    public string? LogPath { get; init; }

    /// <summary>
    /// The backend settings (CLOUD_PROVIDER, CLOUD_API_URL, CLOUD_API_KEY, CLOUD_MODEL, OLLAMA_URL...), written to an
    /// owner-only file (Linux, macOS) or gateway.env in the ACL-limited data folder (Windows), never to a unit, a command line or the registry.
    /// </summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>Stage the files under this root directory (a mounted image) and run no service manager command. The default value is null (this machine).</summary>
    public string? Root { get; init; }
}

/// <summary>One file of the installed service: its path, mode and content as shown (secrets redacted).</summary>
public sealed record GatewayServiceFile(string Path, string Mode, string DisplayContent)
{
    public override string ToString() => $"{Path} ({Mode})";
}

/// <summary>Removes one file (uninstall); a symbolic link is removed, never followed.</summary>
public sealed record RemoveFileStep(string Path, string Description) : HardeningStep(Path, Description)
{
    /// <summary>The -Root the file must stay inside (checked again right before removing); null for the running system.</summary>
    public string? Root { get; init; }
}

/// <summary>
/// Removes the backend settings an earlier Install-AiGateway put in the Windows service's own environment (the
/// REG_MULTI_SZ value Environment of its registry key, readable by local users): the entries named in
/// <paramref name="Names"/>; the value itself goes when nothing else is left in it.
/// </summary>
public sealed record RemoveServiceEnvironmentStep(string ServiceName, IReadOnlyList<string> Names, string Display)
    : HardeningStep($@"HKLM\SYSTEM\CurrentControlSet\Services\{ServiceName}\Environment", Display);

/// <summary>The plan: the ordered steps, the commands left for the target under -Root, the files and warnings.</summary>
public sealed class GatewayServicePlan
{
    public required string Name { get; init; }

    public required HardeningPlatform Platform { get; init; }

    /// <summary>What applying does: Installed, Updated, Unchanged (install); Removed, NotInstalled (uninstall).</summary>
    public required string Status { get; init; }

    public string? Url { get; init; }

    /// <summary>The account the gateway runs as.</summary>
    public string? ServiceAccount { get; init; }

    public string? Root { get; init; }

    /// <summary>Every file of the installation (written or already right; for uninstall, the ones removed).</summary>
    public required IReadOnlyList<GatewayServiceFile> Files { get; init; }

    /// <summary>The changes in order; the cmdlet asks ShouldProcess before each.</summary>
    public required IReadOnlyList<HardeningStep> Steps { get; init; }

    /// <summary>Under -Root: the service manager commands the target needs, not run here (shown, for the image's first boot).</summary>
    public required IReadOnlyList<CommandInvocation> NotRun { get; init; }

    public required IReadOnlyList<string> Warnings { get; init; }

    /// <summary>The result once the steps ran (the commands run are the plan's command steps).</summary>
    public GatewayServiceResult ToResult() => new()
    {
        Name = Name,
        Platform = Platform.ToString(),
        Status = Status,
        Url = Url,
        ServiceAccount = ServiceAccount,
        Root = Root,
        Files = new ItemList<string>(Files.Select(f => f.ToString())),
        Commands = new ItemList<string>(Steps.OfType<RunCommandStep>().Select(c => c.Command.ToString())),
        NotRun = new ItemList<string>(NotRun.Select(c => c.ToString())),
        Warnings = new ItemList<string>(Warnings),
    };
}

/// <summary>What Install-AiGateway and Uninstall-AiGateway write: one object per service, CSV-friendly (lists join with "; ").</summary>
public sealed class GatewayServiceResult
{
    /// <summary>ollamacontinuity-gateway.service, OllamaContinuityGateway or com.ollamacontinuity.gateway.</summary>
    public required string Name { get; init; }

    public required string Platform { get; init; }

    /// <summary>Installed, Updated, Unchanged, Removed or NotInstalled.</summary>
    public required string Status { get; init; }

    public string? Url { get; init; }

    public string? ServiceAccount { get; init; }

    /// <summary>The staging root (-Root), or null for this machine.</summary>
    public string? Root { get; init; }

    /// <summary>The service's files as "path (mode)".</summary>
    public ItemList<string> Files { get; init; } = [];

    /// <summary>The commands run, in order.</summary>
    public ItemList<string> Commands { get; init; } = [];

    /// <summary>Under -Root: the commands the target still needs (not run here).</summary>
    public ItemList<string> NotRun { get; init; } = [];

    public ItemList<string> Warnings { get; init; } = [];

    public override string ToString() => $"{Name} ({Platform}): {Status}";
}

/// <summary>
/// What a Windows plan reads of the machine besides sc.exe, behind a seam so plans are testable anywhere: the
/// settings file in the data folder, and the service's registry environment. The settings live in the file now
/// (the registry value is readable by local users); the registry part stays only to find and remove what an earlier
/// version put there, because a plan that left the cloud key readable after an upgrade would defeat the move. It is
/// kept this small (read, remove names) on purpose: nothing writes settings to the registry any more.
/// </summary>
public interface IServiceEnvironment
{
    /// <summary>The service's Environment value, or null when it has none (or the service does not exist).</summary>
    IReadOnlyList<string>? Read(string serviceName);

    /// <summary>Removes the NAME=value entries with these names; the value is deleted when none is left.</summary>
    void Remove(string serviceName, IReadOnlyCollection<string> names);

    /// <summary>The text of a file on the Windows machine, or null when it does not exist.</summary>
    string? ReadFile(string path);
}

/// <summary>HKLM\SYSTEM\CurrentControlSet\Services\&lt;name&gt;\Environment (REG_MULTI_SZ) and the files of this Windows machine.</summary>
public sealed class WindowsServiceEnvironment : IServiceEnvironment
{
    public static WindowsServiceEnvironment Instance { get; } = new();

    private static string Key(string name) => @"SYSTEM\CurrentControlSet\Services\" + name;

    public IReadOnlyList<string>? Read(string serviceName)
    {
        if (!OperatingSystem.IsWindows())
        {
            return null;
        }

        using var key = Microsoft.Win32.Registry.LocalMachine.OpenSubKey(Key(serviceName));
        return key?.GetValue("Environment") as string[];
    }

    public void Remove(string serviceName, IReadOnlyCollection<string> names)
    {
        if (!OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("A Windows service's environment is changed on Windows only.");
        }

        using var key = Microsoft.Win32.Registry.LocalMachine.OpenSubKey(Key(serviceName), writable: true);
        if (key?.GetValue("Environment") is not string[] values)
        {
            return;
        }

        var kept = GatewayServicePlanner.WithoutNames(values, names);
        if (kept.Length == 0)
        {
            key.DeleteValue("Environment", throwOnMissingValue: false);
        }
        else
        {
            key.SetValue("Environment", kept, Microsoft.Win32.RegistryValueKind.MultiString);
        }
    }

    public string? ReadFile(string path) => File.Exists(path) ? File.ReadAllText(path) : null;
}

/// <summary>Dictionaries standing in for the services' registry environment and the Windows machine's files (tests and plans).</summary>
public sealed class InMemoryServiceEnvironment : IServiceEnvironment
{
    public Dictionary<string, string[]> Values { get; } = new(StringComparer.OrdinalIgnoreCase);

    public Dictionary<string, string> Files { get; } = new(StringComparer.OrdinalIgnoreCase);

    public IReadOnlyList<string>? Read(string serviceName) => Values.TryGetValue(serviceName, out var v) ? v : null;

    public void Remove(string serviceName, IReadOnlyCollection<string> names)
    {
        if (Values.TryGetValue(serviceName, out var v))
        {
            var kept = GatewayServicePlanner.WithoutNames(v, names);
            if (kept.Length == 0)
            {
                Values.Remove(serviceName);
            }
            else
            {
                Values[serviceName] = kept;
            }
        }
    }

    public string? ReadFile(string path) => Files.TryGetValue(path, out var text) ? text : null;
}
