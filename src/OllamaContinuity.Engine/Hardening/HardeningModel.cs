using OllamaContinuity.Native;

namespace OllamaContinuity.Hardening;

public enum HardeningPlatform
{
    Linux,
    Windows,
    MacOS,
}

/// <summary>What Set-OllamaHardening was asked to do. Null means "leave as it is".</summary>
public sealed class HardeningRequest
{
    /// <summary>The value for OLLAMA_HOST (for example 127.0.0.1:11434). The default value is null (unchanged).</summary>
    public string? BindAddress { get; init; }

    /// <summary>The values for OLLAMA_ORIGINS. A wildcard is refused unless <see cref="Force"/>. The default value is null (unchanged).</summary>
    public IReadOnlyList<string>? AllowedOrigins { get; init; }

    /// <summary>Sets OLLAMA_NO_WEBSERVER=1 (the checklist's item; Ollama itself does not read it). The default value is false.</summary>
    public bool DisableWebUI { get; init; }

    /// <summary>User= and Group= of the service (Linux). Never root. The default value is <c>ollama</c>.</summary>
    public string ServiceUser { get; init; } = "ollama";

    /// <summary>True when the caller named the service user (so other platforms warn that it does not apply).</summary>
    public bool ServiceUserGiven { get; init; }

    /// <summary>systemd MemoryMax= (for example 16G or 80%). The default value is null (unchanged).</summary>
    public string? MemoryMax { get; init; }

    /// <summary>systemd CPUQuota= (for example 400%). The default value is null (unchanged).</summary>
    public string? CPUQuota { get; init; }

    /// <summary>systemd TasksMax= (for example 512). The default value is null (unchanged).</summary>
    public string? TasksMax { get; init; }

    /// <summary>systemd sandboxing: NoNewPrivileges, ProtectSystem=strict with the models directory writable, ProtectHome, PrivateTmp. The default value is false.</summary>
    public bool Sandbox { get; init; }

    /// <summary>Apply under this root directory and run no service manager command. The default value is null (this machine, "/").</summary>
    public string? Root { get; init; }

    /// <summary>Restart Ollama after a change. The default value is false.</summary>
    public bool Restart { get; init; }

    /// <summary>The module's drop-in file name without .conf. The default value is <c>90-ollamacontinuity</c>.</summary>
    public string DropInName { get; init; } = DefaultDropInName;

    public bool Force { get; init; }

    public HardeningPlatform Platform { get; init; } = CurrentPlatform;

    public const string DefaultDropInName = "90-ollamacontinuity";

    public static HardeningPlatform CurrentPlatform =>
        OperatingSystem.IsWindows() ? HardeningPlatform.Windows : OperatingSystem.IsMacOS() ? HardeningPlatform.MacOS : HardeningPlatform.Linux;
}

/// <summary>A request that cannot be applied; <see cref="ErrorId"/> is the cmdlet's ErrorId.</summary>
public sealed class HardeningValidationException(string errorId, string parameter, string message, string recommendedAction) : ArgumentException(message, parameter)
{
    public string ErrorId { get; } = errorId;

    public string RecommendedAction { get; } = recommendedAction;
}

/// <summary>One setting: its effective value before and after, and whether this run changed it.</summary>
public sealed record HardeningSetting(string Setting, string? Before, string? After, bool Changed, string Target)
{
    public override string ToString() => $"{Setting}: {Before ?? "(unset)"} -> {After ?? "(unset)"}" + (Changed ? "" : " (unchanged)");
}

/// <summary>One change to the system. The cmdlet asks ShouldProcess(<see cref="Target"/>, <see cref="Action"/>) right before each.</summary>
public abstract record HardeningStep(string Target, string Action);

/// <summary>Writes a whole file atomically (mode <see cref="Mode"/>), first copying the file it replaces to <see cref="BackupPath"/>.</summary>
public sealed record WriteFileStep(string Path, string Content, string? BackupPath, string Description)
    : HardeningStep(Path, Description)
{
    /// <summary>The file's mode on Linux and macOS. The default value is 0644 (configuration read by a service manager); 0600 for files holding secrets.</summary>
    public UnixFileMode Mode { get; init; } = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <summary>The -Root the file must stay inside (checked again right before writing); null for the running system.</summary>
    public string? Root { get; init; }
}

public sealed record RunCommandStep(CommandInvocation Command, string Description)
    : HardeningStep(Command.ToString(), Description);

public sealed record SetMachineEnvironmentStep(string Name, string Value)
    : HardeningStep("machine environment variable " + Name, $"Set to '{Value}'");

/// <summary>Restarts Ollama the way the platform needs (decided when it runs, through the runner).</summary>
public sealed record RestartStep(HardeningPlatform Platform, string ServiceName)
    : HardeningStep(ServiceName, "Restart Ollama");

public sealed class HardeningPlan
{
    public required IReadOnlyList<HardeningSetting> Settings { get; init; }

    public required IReadOnlyList<HardeningStep> Steps { get; init; }

    public required IReadOnlyList<string> Warnings { get; init; }

    /// <summary>True when applying would change anything.</summary>
    public bool Changes => Settings.Any(s => s.Changed);
}
