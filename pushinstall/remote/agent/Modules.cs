// Modules (issue 12): code a session needs only for some ops (changes/: the ops that change a
// machine), sent by the controller with the first request that needs it and compiled on the
// target as a second assembly against the core, kept in the agent's cache as the core is
// (docs/ops.md "Modules"). A compliance check never carries them.
using System;
using System.CodeDom.Compiler;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Reflection;
using System.ServiceProcess;
using System.Text;
using System.Text.RegularExpressions;
using System.Web.Script.Serialization;
using Microsoft.CSharp;

namespace Pushinstall.Agent
{
    public static class Modules
    {
        /// <summary>The sources of the modules this session loaded: the SYSTEM task's worker is
        /// compiled from the core's and theirs.</summary>
        public static readonly List<string> Sources = new List<string>();

        private static string coreName;
        private static string failure;

        /// <summary>What an op answers while its module is not loaded.</summary>
        public static object Missing(Args args)
        {
            throw new OpException("Exception", "this op is in a module the controller sends first (op module)"
                                  + (failure == null ? "" : "; it did not load: " + failure));
        }

        /// <summary>`module`: compile `source` against the core (or load it from the cache, by
        /// the sha256 of the core's DLL and the source) and register its ops.</summary>
        public static object Load(Args args)
        {
            string name = args.Str("name");
            string source = args.Str("source");
            if (!Regex.IsMatch(name, "^[a-z]+$"))
            {
                throw new OpException("InvalidArgument", "argument 'name' must be lowercase letters");
            }
            Dictionary<string, object> result = new Dictionary<string, object>();
            result["name"] = name;
            if (Sources.Contains(source))
            {
                return result;
            }
            try
            {
                string core = CoreImage();
                coreName = AssemblyName.GetAssemblyName(core).Name;
                string key = Cache.Hash(Encoding.UTF8.GetBytes(Cache.Hash(File.ReadAllBytes(core)) + "\n" + source));
                byte[] image;
                if (Cache.Find(key, out image) == null)
                {
                    image = Build(core, key, source);
                }
                AppDomain.CurrentDomain.AssemblyResolve -= ResolveCore;
                AppDomain.CurrentDomain.AssemblyResolve += ResolveCore;
                string entry = "Pushinstall.Agent." + char.ToUpperInvariant(name[0]) + name.Substring(1) + "Module";
                Assembly.Load(image).GetType(entry, true).GetMethod("Register").Invoke(null, null);
            }
            catch (Exception error)
            {
                Exception inner = error is TargetInvocationException && error.InnerException != null ? error.InnerException : error;
                failure = inner.Message;
                throw new OpException(inner is OpException ? ((OpException)inner).Type : "Exception",
                                      "module " + name + " did not load: " + inner.Message);
            }
            Sources.Add(source);
            failure = null;
            return result;
        }

        // the core's assembly as a file to compile against: where it was loaded from, else its
        // DLL in the cache (the shim loads that from bytes, which leaves no location)
        private static string CoreImage()
        {
            string path = typeof(Core).Assembly.Location;
            if (!string.IsNullOrEmpty(path))
            {
                return path;
            }
            byte[] bytes;
            path = Cache.Find(Cache.Hash(new UTF8Encoding(false).GetBytes(Core.Source ?? "")), out bytes);
            if (path == null)
            {
                throw new OpException("Exception", "no compiled core in " + Cache.Folder + " to build it against");
            }
            return path;
        }

        private static byte[] Build(string core, string key, string source)
        {
            string temp = Path.Combine(Path.GetTempPath(), "pushinstall-" + Guid.NewGuid().ToString("N") + ".dll");
            try
            {
                Compile(temp, null, new string[] { core }, source);
                byte[] image = File.ReadAllBytes(temp);
                Cache.StoreAssembly(key, image);
                return image;
            }
            finally
            {
                try
                {
                    File.Delete(temp);
                }
                catch (Exception)
                {
                }
            }
        }

        // a module names the core's assembly as it was compiled against; the session's core,
        // loaded from bytes, is not found by that name unless it is handed over
        private static Assembly ResolveCore(object sender, ResolveEventArgs args)
        {
            return new AssemblyName(args.Name).Name == coreName ? typeof(Core).Assembly : null;
        }

        /// <summary>Compiles `sources` with CodeDom (the csc Add-Type uses) into `output`: an
        /// executable when `mainClass` is given, else a library, referencing what the core does
        /// and `references`.</summary>
        public static void Compile(string output, string mainClass, string[] references, params string[] sources)
        {
            CompilerParameters parameters = new CompilerParameters();
            parameters.GenerateExecutable = mainClass != null;
            parameters.GenerateInMemory = false;
            parameters.OutputAssembly = output;
            parameters.MainClass = mainClass;
            Type[] anchors = { typeof(Uri), typeof(System.Linq.Enumerable), typeof(JavaScriptSerializer),
                               typeof(ServiceController), typeof(ZipArchive), typeof(ZipFile) };
            foreach (Type anchor in anchors)
            {
                parameters.ReferencedAssemblies.Add(anchor.Assembly.Location);
            }
            parameters.ReferencedAssemblies.AddRange(references);
            CompilerResults compiled;
            using (CSharpCodeProvider compiler = new CSharpCodeProvider())
            {
                compiled = compiler.CompileAssemblyFromSource(parameters, sources);
            }
            foreach (CompilerError error in compiled.Errors)
            {
                if (!error.IsWarning)
                {
                    throw new OpException("Exception", "cannot compile " + Path.GetFileName(output) + ": " + error.ErrorText);
                }
            }
        }
    }
}
