namespace OllamaContinuity.Hardening;

/// <summary>Machine-scope environment variables (Windows), behind a seam so plans are testable anywhere.</summary>
public interface IMachineEnvironment
{
    string? Get(string name);

    void Set(string name, string value);

    /// <summary>The current user's value (user scope wins over machine scope for the apps the user starts).</summary>
    string? GetUser(string name);
}

/// <summary>The real machine scope (HKLM\...\Environment on Windows).</summary>
public sealed class MachineEnvironment : IMachineEnvironment
{
    public static MachineEnvironment Instance { get; } = new();

    public string? Get(string name) => Environment.GetEnvironmentVariable(name, EnvironmentVariableTarget.Machine);

    public void Set(string name, string value) => Environment.SetEnvironmentVariable(name, value, EnvironmentVariableTarget.Machine);

    public string? GetUser(string name) => Environment.GetEnvironmentVariable(name, EnvironmentVariableTarget.User);
}

/// <summary>A dictionary standing in for the machine scope (tests and plans).</summary>
public sealed class InMemoryMachineEnvironment : IMachineEnvironment
{
    public Dictionary<string, string> Values { get; } = new(StringComparer.OrdinalIgnoreCase);

    public Dictionary<string, string> UserValues { get; } = new(StringComparer.OrdinalIgnoreCase);

    public string? Get(string name) => Values.TryGetValue(name, out var v) ? v : null;

    public string? GetUser(string name) => UserValues.TryGetValue(name, out var v) ? v : null;

    public void Set(string name, string value) => Values[name] = value;
}
