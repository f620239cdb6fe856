using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace OllamaContinuity;

/// <summary>
/// Loads OllamaContinuity.Engine and its dependencies (Microsoft.Extensions.*) from Dependencies/
/// into their own <see cref="AssemblyLoadContext"/>, as in the PowerShell docs "Resolving PowerShell module
/// assembly dependency conflicts". Only the engine's name is resolved from the default context; everything the
/// engine needs is then found inside its own context first, so another module's versions never interfere.
/// </summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer
{
    private const string EngineAssemblyName = "OllamaContinuity.Engine";
    private static readonly object Gate = new();
    private static bool s_registered;

    internal static string DependencyDirectory { get; } =
        Path.Combine(Path.GetDirectoryName(typeof(ModuleInitializer).Assembly.Location)!, "Dependencies");

    internal static DependencyLoadContext LoadContext { get; } = new(DependencyDirectory);

    public void OnImport()
    {
        // Importing into several runspaces of one process registers the handler once.
        lock (Gate)
        {
            if (!s_registered)
            {
                AssemblyLoadContext.Default.Resolving += ResolveEngine;
                s_registered = true;
            }
        }
    }

    private static Assembly? ResolveEngine(AssemblyLoadContext context, AssemblyName name) =>
        string.Equals(name.Name, EngineAssemblyName, StringComparison.Ordinal) ? LoadContext.LoadFromAssemblyName(name) : null;
}

/// <summary>The module's own load context: assemblies in Dependencies/ win; the framework comes from the default context.</summary>
internal sealed class DependencyLoadContext : AssemblyLoadContext
{
    private readonly string _directory;

    public DependencyLoadContext(string directory)
        : base("OllamaContinuity", isCollectible: false) => _directory = directory;

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        var path = Path.Combine(_directory, assemblyName.Name + ".dll");
        return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
    }
}
